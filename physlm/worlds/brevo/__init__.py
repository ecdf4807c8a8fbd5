"""The Brevo world: Part 4.1's reasoning-breadth task, recursive dependency listing over a DAG (SPEC 7.3, 11.1.2).

Reproduces: random DAGs of n vertices with in- and out-degree at most 4 (training n ~ P(n) ∝ 1/(n + √N), test
n = N), every edge listed, a query from the last quarter of the creation order (the released code's "last vertex"
as an option), and the answer, every vertex the query recursively depends on and the query, in a topological
order; Brevo1 (one token per vertex, names 1..N) and Brevo2 (multi-token words, 2-4 symbols over 4); the loss on
`<ans>`, the answer and `<eos>`; an exact checker (any valid order, no partial credit); exact-match accuracy at
n = N and by n with teacher-forced token accuracy beside it; a per-layer linear probe of the query's depth at
`<ans>`; and the `brevo-paper` preset (N = 70/90/110 and 30/40/50; the sizes and the RoPE / NoPE / partial-RoPE ×
Canon grid). Page: docs/brevo.md.

Modules: `graph` (the DAG, query, answer order, depth), `sample` (one whole instance from its RNG: size, graph,
Brevo2 words, edge order), `frames` (Parquet rows and brevo.json, read and written), `text` (layout, vocabulary, encoding,
reading answers back), `checker` (the exact checker); the steps `generate`, `tokenize`, `probe`, `evaluate`,
`report`, `presets`; `params` (its schemas).

Parquet (`data/<dataset>/raw/{train,test,sizes}.parquet`, one row per instance; instance i of a split is drawn from
its own RNG seeded by (seed, split, i)): `index` int64; `n` int16 (vertices); `vertices` list[int16] (ids 1..N in
creation order); `edge_parent`, `edge_child` list[int16] (the edges as written, parent then child: the child
depends on the parent); `query` int16; `answer` list[int16] (the gold order: ancestors, then the query); `depth`
int16 (the query's shortest distance to a leaf); Brevo2 also `words` list[list[uint8]] (each vertex's word, aligned
with `vertices`, symbols 1..2V, the last one above V). train: n ~ 1/(n + √N) on 3..N; test: n = N; sizes:
`size_examples` instances for each of `eval_sizes` (default N/4, N/2, 3N/4), cycling. Beside them `brevo.json`,
the layout (`names`, `N`, the word shape) that tokenize, probe and evaluate read. Tokens: `<bos>` = 0, `<eos>` = 1,
`<query>` = 2, `<ans>` = 3, name symbol s = s + 3 (`text.py`).

Studies: the showcase's `brevo_demo` (Brevo1, N 8) with `brevo_rope`, `brevo_nope` and `brevo_nope_canon` (a
2-block Llama with RoPE, without positions, and without positions with Canon-ABCD, 400 steps); the suite adds seeds
and RoPE + Canon-ABCD (presets.py); tests/test_brevo.py runs tiny Brevo1 and Brevo2
studies through every step.
Paper scale: `python -m physlm.presets brevo-paper` (`--variants`, `--N`, `--sizes`, `--archs`).

Oracle tests (tests/test_brevo.py): every answer set against brute-force transitive closure, the checker against a
re-derivation by pairwise reachability on gold answers, other valid orders and hand-made faults; degree bounds,
leaf counts, query positions, the training-size law, and the sizes SPEC 11.1.2 measured on the released generator
(Brevo1 N = 110: 519 mean / 646 max tokens, ≈39 answer vertices; Brevo2 N = 50: 761 mean tokens); determinism
and worker-count independence; the loss mask; evaluation scored against known answers through a scripted model.
"""

from physlm.worlds import World
from physlm.worlds.brevo.params import PARAMS

WORLD = World(
    name="brevo",
    title="Part 4.1: Brevo, recursive dependency listing",
    spec="SPEC 7.3, 11.1.2",
    demo="a GPT lists every vertex a query depends on in a valid topological order; a probe reads the query's depth at <ans>",
    params=PARAMS,
    package=__name__,
    steps=frozenset({"presets"}),
)
