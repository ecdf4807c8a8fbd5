"""Depo: Part 4.1's reasoning-depth task, k-hop lookups along a random permutation cycle (SPEC 7.3, 11.1.1).

Reproduces: the Depo1 and Depo2 generators (multi-token words, cycle, shuffled edges, k-hop queries, loss only
on the answers), greedy exact-match accuracy at n = N by hop k with teacher-forced symbol accuracy beside it
(SPEC 11.1.5's choice), layer-wise linear probes at `<ans>`, and the `depo-paper` preset (Fig. 7's grid:
Depo1 N = 225/300/375, Depo2 N = 75/100/125, four model sizes, RoPE / NoPE / partial RoPE without and with
Canon-ABCD, and the Canon-placement ablations; SPEC 8 rows P4.1-a/b/c). Page: docs/depo.md.

An instance (`instance.py`): n distinct words w_0..w_{n-1} in cycle order (w_i -> w_{i+1 mod n}), the n
edges `w_i w_{i+1}` written in random order, then min(10, n) queries with distinct sources q, each written
`<query_k> q <ans> a` with a the k-th successor of q. Depo1: words of 1-2 symbols over vocab V = 50;
Depo2: 5-7 symbols over V = 4 (the paper's; the released code's 3 is `vocab: 3`). A word's inner symbols
are 1..V, its last V+1..2V (`physlm.playground.words`). Training: n ~ P(n) proportional to 1/(n + sqrt N) on
3..N, k ~ U{1..K}. Test: n = N, k uniform over the powers of 2 up to K (and K). Example i of split s is drawn
from its own generator seeded by (seed, s, i), so it can be regenerated alone and the files do not depend on
the worker count.

Parquet (`data/<dataset>/raw/{train,test}.parquet`, one row per instance; `depo.json` beside them holds the
resolved spec: N, K, vocab, min_len, max_len, queries, test_hops):
- `index` int64; `n` uint16 (cycle length);
- `words` list[list[uint16]]: the n words in cycle order, as symbols 1..2V;
- `edges` list[uint16]: the cycle position of each written edge's source, in written order;
- `queries`, `answers` list[uint16]: cycle positions of each query's source and answer; `hops` list[uint16];
- `length` int32: tokens of the instance (without the packing's <bos>/<eos>); `text` str: the instance as
  whitespace-separated vocabulary strings (`w` symbols as decimals, `<query_k>`, `<ans>`).
Tokens (`tokenize.py`): `<bos>` 0, `<eos>` 1, `<ans>` 2, `<query_k>` 2+k, symbol s K+2+s; loss mask 1 on
each `<ans>` and its answer's symbols (`tokenize.loss: all` trains on every token).

Steps: `generate`, `tokenize`, `probe` (linear probes per layer at `<ans>`: the answer's first symbol and the
1st successor's), `evaluate` (by k: greedy exact match of the whole answer with the earlier queries answered
in the prompt, and teacher-forced symbol accuracy), `report` (the accuracy-by-k table, one column per study;
`depo_accuracy.png`, `depo_probe.png`), `presets` (`depo-paper`; `SUITE`: the architecture comparison in
miniature); `params` (its schemas).

Where the released generator (`data-synthetic-pretrain/Depo/depo.py`) is defective or silent (SPEC 11.1.4),
this world chooses:
- it does not run (no `import random`, `bos_token_id` undefined, a final assert on an undefined
  `token_type`): `<bos>` is the engine's id 0, added by the packing, and the loss mask is built from the
  token ids (`tokenize.answer_mask`), so it has their length by construction;
- it draws from one module-level `random.Random(42)`, so an instance depends on every call before it: here
  each instance has its own generator (above);
- it turns its set of words into a list (an order the set gives) before shuffling: here words are kept in
  the order drawn and the cycle is a seeded permutation of them;
- Depo2's vocab: the paper says 4, the code 3 (SPEC 9 item 4): default 4, `generate.vocab: 3` for the code's;
- test hops: the code adds hop 24 when K = 32; here the powers of 2 up to K and K itself, any other list
  through `generate.test_hops`;
- its optional separator token (9700, off by default) is not implemented; token ids are this world's compact
  vocabulary rather than 9000+k / 9500 / 1..2V in a 10,000-id space;
- it releases no evaluation: the choice above (exact match, SPEC 11.1.5) with the paper's per-token view
  beside it (teacher forcing).

Oracle tests (tests/test_depo.py): every answer of generated train and test instances checked by a separate
parser that reads only the rendered text, rebuilds the successor map from the edges, checks it is one cycle
of n distinct words and follows it k hops; the test-instance sizes, label counts and training means against
SPEC 11.1.1's measurements; hop and size distributions (chi-square); distinct queries; determinism and
worker-count independence; the loss mask; scoring against a scripted model whose right, wrong and
malformed answers are known; the stages end to end on a tiny dataset.
"""

from physlm.worlds import World
from physlm.worlds.depo.params import PARAMS

WORLD = World(
    name="depo",
    title="Part 4.1: Depo, k-hop reasoning over a permutation cycle",
    spec="SPEC 7.3, 11.1.1",
    demo="a GPT answers k-hop questions about a random cycle of words given in context: exact-match accuracy by hop k at n = N",
    params=PARAMS,
    package=__name__,
    steps=frozenset({"presets"}),
)
