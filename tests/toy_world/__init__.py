"""The toy world: "copy the prompt", the smallest world that takes part in every required step. It exists only
to prove that adding a world is adding one package (tests/test_toy_world.py drives it through every stage,
registered in-process and, copied to physlm/worlds/toy, through `dvc repro`); it reproduces no paper.

An example is a random string of `generate.length` letters drawn from the first `generate.letters` of a..z,
then the separator `=`, then the same string again. Example i of a dataset is drawn from its own RNG,
`random.Random(f"toy:{seed}:{i}")`; the test indices follow the training ones.

Parquet (`data/<dataset>/raw/{train,test}.parquet`, one row per example): `index` int64, `text` str (the
letters, once; the copy is the tokenizer's). Tokens: `<bos>` = 0, `<eos>` = 1, `=` = 2, a..z = 3..28, the
same vocabulary for every dataset (`tokenize.py`). With `tokenize.loss: copy` only the copies and their
`<eos>` are training targets (a loss mask; tests/test_toy_world.py trains that way too).

Steps: `generate`, `tokenize`, `probe` (a linear probe reads the first letter from the last block's residual
stream at the separator, trained model vs a random-init control), `evaluate` (greedy copies after the
separator, exact match, vs a random-init control), `report` (a table and `toy_copy.png`); `params` (its
schemas). No optional steps: it trains on its tokenized train split. (`stream.py` is for tests that stream
from a copy of this world registered with `steps={"stream"}`.)

The package imports only the engine and itself (relative imports), so it works wherever it lives: as
`tests/toy_world` (registered with `physlm.worlds.register`) or as `physlm/worlds/toy` (found by discovery).
"""

from physlm.worlds import World

from .params import PARAMS

WORLD = World(
    name="toy",
    title="Toy: copy the prompt (a tests-only world)",
    spec="none (tests only)",
    demo="a GPT copies a random letter string after the separator; a linear probe reads its first letter there",
    params=PARAMS,
    package=__name__,
    steps=frozenset(),
)
