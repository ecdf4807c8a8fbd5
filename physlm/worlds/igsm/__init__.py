"""The grade-school math world: Part 2.1, "Grade-school math and the hidden reasoning process" (iGSM; SPEC 2).

Reproduces: the iGSM generator in the paper's stages (world knowledge of categorized item names, structure
graph, dependency graph, exact op, mod-23 arithmetic, shortest chain-of-thought solution, template-hash
train/test split), the OOD and reask eval sets, a full-solution judge checked against an independent
text-reading evaluator, accuracy by op (greedy and beam search), teacher-forced step checks, V-probing of six
reasoning properties, and the `igsm-med` / `igsm-hard` presets with the depth-vs-width matrix. Page:
docs/igsm.md.

Modules: `knowledge`, `graph` (hyper-parameters, G_s, G_d), `render` (text, template hash), `problems`
(`generate_problem`, `reask`, eval sets), `frames` (Parquet rows, sharded generation), `types` (the text
contract), `judge`, `oracle`, `text` (markers, vocabulary), `labels` (V-probe labels, teacher-forced parts),
`vprobe`; the steps `generate`, `tokenize`, `stream`, `probe`, `evaluate`, `report`, `presets`; `params`.

Parquet (`data/<dataset>/raw/{train,test,opmax,ood,reask}.parquet`, one row per problem, `frames.FRAME_SCHEMA`):
`index`, `split`, the texts `problem`, `question`, `solution`, `answer` (0..22), `op`, `fmt` (pq / qp),
`bucket` (template hash mod 23), `categorization`, `layers`, `query`, every parameter's `param_name`,
`param_abstract`, `param_deps`, `param_combine`, `param_rng_op`, `param_const`, `param_value`, and
`sentences`, `necessary`, `order` (the solution's parameters). train: op <= max_op, training templates; test:
held-out templates; opmax: op = max_op; ood: `ood_ops`; reask: op = max_op problems asked about another
parameter, the new template also held out (its op, in `op`, often above max_op). No eval problem shares a
template with a training problem.

Studies: the showcase `igsm_demo` (problems of at most 4 operations, a Canon-AC GPT with attention inside each
packed problem: solutions judged whole, V-probes, teacher-forced steps). Paper scale: `python -m physlm.presets
igsm-med` (or `igsm-hard`, `--depth-width size1,size2`).

Oracle tests: every value recomputed from the parameter facts, op == number of operations, dependencies before
use, the text of each sentence type, the bucket rule, worker-count independence (tests/test_igsm.py); the judge
against the independent evaluator `oracle.py` and hand-built faults (test_igsm_judge.py); V-probe labels on a
hand-built problem (test_vprobe.py).
"""

from physlm.worlds import World
from physlm.worlds.igsm.params import PARAMS

WORLD = World(
    name="igsm",
    title="Part 2.1: grade-school math (iGSM)",
    spec="SPEC 2",
    demo="full solutions judged step by step far above the random-init control; V-probes read which parameters are necessary",
    params=PARAMS,
    package=__name__,
    steps=frozenset({"stream", "presets"}),
)
