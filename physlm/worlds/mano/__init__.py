"""The Mano world: Part 4.1's knowledge manipulation task, mod-23 arithmetic without chain of thought (SPEC 7.3,
11.1.3).

Reproduces: prefix expressions of ℓ operations over {+, −, ×} mod 23 (any modulus 2..23 as an option; training ℓ ~ U{1..L}, test ℓ = L), the
layout `<bos> <len_ℓ> expression <ans> value` with the loss on every token, the released code's knowledge
augmentation as an option, single-token answer accuracy at ℓ = L (greedy and teacher-forced) and by ℓ, a
per-layer linear probe of the value at `<ans>`, and the `mano-paper` preset (L = 10, 13, 16; the sizes and the
RoPE / NoPE / partial-RoPE × Canon grid). Page: docs/mano.md.

Modules: `expression` (one example: the tree, its value, its text; no torch); the steps `generate`,
`tokenize` (the fixed vocabulary), `probe`, `evaluate`, `report`, `presets`; `params` (its schemas).

Parquet (`data/<dataset>/raw/{train,test,lengths}.parquet`, one row per expression; example i of a split is drawn
from its own RNG seeded by (seed, split, i)): `index` int64; `ops` int16 (ℓ, the number of operations);
`expression` str (the prefix expression, canonical symbols `+ - * /` and values `0`..`22` separated by spaces,
no augmentation twins); `value` uint8 (its value mod 23); `text` str (the example as trained on:
`<len_ℓ> expression <ans> value`, with the augmentation twins when `augment`). train: ℓ ~ U{1..L}; test: ℓ = L;
lengths: `length_examples` expressions for each of `eval_lengths` (default 1..L), cycling through them.
Tokens: `<bos>` = 0, `<eos>` = 1, then the fixed vocabulary of `tokenize.py` (the same for every dataset).

Studies: the showcase's `mano_demo` (mod 5, L = 2: `generate.modulus` shrinks the tables for a CPU miniature)
with `mano_rope` / `mano_rope_canon` (a 2-block Llama, 600 steps); the suite adds seeds and the NoPE pair;
tests/test_mano.py runs a tiny one through every step. Paper scale:
`python -m physlm.presets mano-paper` (`--sizes`, `--archs`, `--lengths`).

Oracle tests (tests/test_mano.py): every value against an independent evaluator (a stack machine reading the
prefix expression from the right), 2ℓ + 1 symbols and 2ℓ + 5 tokens up to the answer, the ℓ distributions and
the uniform split of operations between children, operator and leaf frequencies, augmentation, determinism and
worker-count independence, no loss mask; evaluation scored against known answers through a scripted model.
"""

from physlm.worlds import World
from physlm.worlds.mano.params import PARAMS

WORLD = World(
    name="mano",
    title="Part 4.1: Mano, mod-23 arithmetic without chain of thought",
    spec="SPEC 7.3, 11.1.3",
    demo="a GPT answers prefix expressions mod 23 in one token, far above chance; a linear probe finds the layer where the value appears",
    params=PARAMS,
    package=__name__,
    steps=frozenset({"presets"}),
)
