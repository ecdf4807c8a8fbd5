"""The capacity world: Part 3.3, "Knowledge capacity scaling laws" (SPEC 6, 11.2).

Reproduces: the bioD(N, K, C, D, L, T) data (names drawn without replacement from the shared bioS name pools,
K attributes of C chunks, each chunk one of an attribute's D distinct strings of L tokens over T), training
measured in exposures rather than steps (with the realized exposure count per person in the train metrics), and
the capacity measurement: the summed name, value and first-chunk losses p1, p2, p3 of every person, the
bit-complexity lower bound and the capacity ratio R(F) = bits / P, with P counted two ways (the paper's, whose
embedding has only the tokens the data uses, and physlm's plain parameter count), and whether a point is
capacity-bound (the data holds more than 2 bits per parameter); the junk-data study's mixture (junk paragraphs of
other people making a share of the train tokens, with or without a domain token before the useful ones); and, for
paper-scale exposures, the train split streamed in exact exposure rounds (`train.stream`: round r a seeded
permutation of the N people, each paragraph the person's writing r, every person exactly E times in E rounds, no
stored copies). `generate.data` bioS / bioS_simple builds the paper's bioS(N) and bioS^simple(N) instead of bioD
(SPEC 6.1): Part 3.1's biography people (`physlm.bios`), each writing of a person its own draw of templates and
sentence order (bioS^simple: one fixed entry), the first sentence opening with the name; measured with p1 (name)
and p2 (every value token and the first pronoun) against N0 and S0 (the attribute combinations, counted from the
pools used). Page: docs/capacity.md.

Modules: `biod` (the generator, one person at a time; no torch), `biosn` (bioS(N): the people, `writing(spec,
person, w)` with its value spans, N0 and S0, the vocabulary; no torch), `bits` (the formulas; no torch), `quantize`
(round-to-nearest int8 / int4 copies of a model), `rounds` (the exposure rounds and which paragraphs each streamed
window holds; no torch); the steps `generate`, `tokenize` (the vocabulary built from the pools, the train split's
re-ordered writings), `stream` (the streamed train split: a data kind's writings over the rounds), `train` (steps
from exposures, the exposure histogram, materialised or streamed), `probe`
(per-layer linear probes of each attribute's first chunk at the name's last token), `evaluate` (p1, p2, p3, bits,
R, and the same for the quantized copies), `report` (a table and `capacity_bits.png`), `presets` (the showcase's
DEMO_*, the SUITE, `capacity-grid` and `capacity-paper`); `params` (its schemas).

Parquet (`data/<dataset>/raw/`): `people.parquet` (one row per person: person, first, middle, last, name_index,
chunks, values, order, text, tokens), `chunks.parquet` (the diversity sets: attribute, chunk, tokens) and
`capacity.json` (N0, N, K, C, D, L, T, the pools, the seed, tokens per paragraph), `stream.json` (what the stream
is built from), and with junk people `junk.parquet`; bioS kinds: `people.parquet` (the biography people's columns,
person, text, tokens) and `capacity.json` (data, N0, N, S0 and its factors, the pools, pronouns, seed); columns in
`generate`.

Studies: the showcase's `capacity_demo` (bioD with N 1,000, K 8, C 1, D 32, L 2, T 64) and three 2-block GPTs
16, 32 and 64 wide (`capacity_d2w16`, `capacity_d2w32`, `capacity_d2w64`; presets.py's DEMO_*), 100 exposures
each; `python -m physlm.presets suite` adds a fourth size, a second N, 300 exposures and the junk-data study;
`capacity-grid` / `capacity-paper` write paper-scale grids; tests/test_capacity_stages.py runs a tiny study through every stage.

Tests: tests/test_capacity.py reads every paragraph back with its own parser (each attribute once, values from
the attribute's set, names distinct and from the pools, the formula's inputs re-derived from the files),
determinism and worker-count independence, bad params; tests/test_capacity_bits.py the formula's known answers;
tests/test_capacity_stages.py the exposures, the evaluation on a scripted model, and a tiny study end to end;
tests/test_capacity_quantize.py the quantization; tests/test_capacity_presets.py the presets;
tests/test_capacity_junk.py the junk-data mixture; tests/test_capacity_bios.py bioS and bioS^simple (every paragraph read
back by a parser built from the template file, the value spans, p1 / p2 on scripted models, a tiny study end to end).
tests/test_capacity_stream.py the streamed split (the rounds'
writings against the materialised split's, the window schedule against a sequential packer, exact exposures, a
tiny study streamed and materialised).
"""

from physlm.worlds import World
from physlm.worlds.capacity.params import PARAMS

WORLD = World(
    name="capacity",
    title="Part 3.3: knowledge capacity (bits per parameter)",
    spec="SPEC 6, 11.2",
    demo="a GPT trained for a number of exposures on bioD stores a measured number of bits; R(F) = bits / parameters",
    params=PARAMS,
    package=__name__,
    steps=frozenset({"stream", "train", "presets"}),
)
