"""The biography world: Part 3.1, "Knowledge storage and extraction" (SPEC 4).

Reproduces: people with the SPEC's attribute pools, bioS biographies with every augmentation (multiM, permute,
fullname, couple), a bioR-style paraphraser and an import path for externally written biographies, QA with
P_train / P_test, the training regimes (BIO pretraining then full or LoRA QA finetuning, mixed training, the
celebrity experiment), exact-match QA evaluation, P- and Q-probing, and the `bio-paper` preset. Page:
docs/bio.md.

Modules: `people` (attributes, pools, templates; package data in `data/`), `biographies` (bioS / bioR text and
the tables), `text` (vocabulary, QA texts, value token spans), `pqprobe`; the steps `generate`, `tokenize`,
`train` (the regimes), `probe`, `evaluate`, `report`, `presets`; `params`. It does not stream: a population
is fixed knowledge.

Parquet (`data/<dataset>/raw/`, columns in `biographies`): `people.parquet` (one row per person: id, name
parts, full name, birth date parts and text, birth city, university, major, employer, work city, pronoun),
`bios.parquet` (one row per biography: person, entry, text, order, and each attribute's character span
`<attribute>_start` / `_end`), `qa.parquet` (six rows per person: attribute, question, answer, value, split
P_train / P_test); `pools.json` (the pool sizes the vocabulary is built from).

Studies: the showcase `bio_single` vs `bio_aug` (the same 100 people and budget, one biography each against
five shuffled ones: only the augmented model answers questions about people it was never asked about);
`bio_mixed` and `bio_lora` are commented-out regimes. Paper scale: `python -m physlm.presets bio-paper`.

Oracle tests: every bioS sentence parsed back by an independent template matcher and every bioR text scanned
for its person's values and no other pool value, spans, QA, template coverage, the import checks
(tests/test_bio.py); tokenization round trips and value spans (test_biotext.py); a memorising model scores
1.0 and a random one 0 (test_evaluate_bio.py); probes on synthetic sequences with known labels
(test_pqprobe.py).
"""

from physlm.worlds import World
from physlm.worlds.bio.params import PARAMS

WORLD = World(
    name="bio",
    title="Part 3.1: biographies (knowledge storage and extraction)",
    spec="SPEC 4",
    demo="with augmented biographies the model answers questions about people it was never asked about; without, it cannot",
    params=PARAMS,
    package=__name__,
    steps=frozenset({"train", "presets"}),
)
