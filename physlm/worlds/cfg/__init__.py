"""The grammar world: Part 1, "Hierarchical language structure" (context-free grammars; SPEC 1).

Reproduces: the layered cfg3 grammars (the nine published rule tables in `grammars/`, and a seeded builder with
the paper's knobs), sentences with their parse-tree labels, an exact membership judge and the exact next-token
distribution; implicit grammars and perturbed training data (SPEC 1.5); generation judged exactly (cut0 /
cut-prefix), KL, diversity, corrupted prompts; linear and multi-head probes of the parse tree with random-init
and encoder-only (MLM) controls; the attention analysis; the `part1-paper` preset. Page: docs/cfg.md.

Modules: `grammar` (grammars, sampler, `Judge`), `dist` (exact next-token distribution), `parse` (a canonical
parse), `implicit`, `corrupt`, `language` (a dataset's grammar and bags); the steps `generate`, `tokenize`,
`stream`, `probe` (with `probes`, `attention`), `evaluate` (with `generation`, `diversity`, `robust`),
`report`, `presets`; `params` (its schemas).

Parquet (`data/<dataset>/raw/{train,test}.parquet`, one row per sentence; example i is sampled from its own RNG
seeded by (seed, i), the test indices follow the training ones):
- `index` int64; `tokens` list[uint16]: terminal ids 1..V (implicit grammars: vocabulary tokens 1..M);
- `terminals` list[uint16]: implicit grammars only, the terminal string that emitted `tokens`;
- `ancestors` list[list[uint16]]: one list per NT level 1..D-1 (level 1 just below the root), the NT above each
  token; `boundaries` list[list[uint8]]: the same shape, 1 where the token ends its level-l subtree;
- `perturbed` bool: the training sentence was corrupted (`generate.perturb`); its labels stay the clean ones.
Beside them: `grammar.txt` (the grammar, `grammar.format_grammar`), `bags.json` (an implicit grammar's bags),
`stream.json`. Tokens: `<bos>` = 0, `<eos>` = 1, terminal t = t + 1 (`tokenize.py`).

Studies (params.yaml): the showcase `cfg_demo` (a generated grammar a CPU model learns in minutes: generation,
KL, diversity, probes with both controls, attention); the full miniature suite adds the attention-variant
matrix on `cfg_small` (`cfg_rot`, `cfg_abs`, `cfg_rel`, `cfg_pos`, `cfg_uni`), `cfg_noisy` (perturbed
training) and `cfg_implicit`.

Oracle tests: membership against nltk's chart parser, positives and negatives (tests/test_cfg_oracle.py,
test_implicit.py); the exact distribution against brute-force enumeration (test_cfg_dist.py); the canonical
parse against the sampler's labels (test_cfg_parse.py); probes against scikit-learn (test_probe.py); the
published tables against the SPEC's counts (test_cfg.py).
"""

from physlm.worlds import World
from physlm.worlds.cfg.params import PARAMS

WORLD = World(
    name="cfg",
    title="Part 1: context-free grammars",
    spec="SPEC 1",
    demo="a 4-layer GPT generates sentences the exact judge accepts and encodes the parse tree (probes above both controls)",
    params=PARAMS,
    package=__name__,
    steps=frozenset({"stream", "presets"}),
)
