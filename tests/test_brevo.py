"""The Brevo world (physlm/worlds/brevo/): the generator and the checker against brute-force re-derivations and
against the sizes SPEC 11.1.2 measured on the released generator, its files, tokens, loss mask and scoring, and
tiny Brevo1 and Brevo2 studies through every stage.

- oracle: the answer set of every instance is the query plus its transitive closure under "depends on"
  (reachability by repeated boolean matrix products, not the generator's walk), and the gold order is valid by
  pairwise reachability (no later vertex reaches an earlier one); the checker agrees with that oracle on gold
  answers, other valid orders, random permutations and hand-made faults (a missing, an extra, a duplicated or an
  unknown vertex, adjacent swaps);
- structure: in- and out-degree at most 4, parents always earlier, a first run of L parentless vertices with L in
  1..⌊(n−1)/4⌋+1 (every L occurring), the query in the last quarter (or last) and never a leaf; training sizes
  follow 1/(n + √N);
- SPEC 11.1.2's sizes: Brevo1 N = 110 519 mean / 646 max tokens, ≈39 answer vertices, depth ≈2.6; Brevo2 N = 50
  761 mean tokens; the mean training instance (SPEC: ≈200; the released code gives ≈184 on 4,000 draws, measured
  here with a throwaway copy of it outside physlm);
- determinism and worker-count independence; Parquet round trip; brevo.json; bad files;
- the loss mask: 1 on `<ans>` and the answer, `<eos>` a target (eos_loss) once the engine has masks;
- scoring: a scripted model writes the gold answer, another valid order, a wrong order, a malformed answer, an
  answer missing a vertex and a duplicated vertex; exact-match accuracy, reasons and teacher-forced token counts are
  known exactly;
- tiny Brevo1 and Brevo2 studies in process: generate, tokenize, train, probe, evaluate, report.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
import torch
import yaml
from test_mano import ROOT, RuleModel

import generations

import physlm.worlds.brevo.generate as brevo_generate
from physlm.errors import DataError
from physlm.playground import size_probabilities
from physlm.tokenize import Vocab
from physlm.worlds.brevo.checker import REASONS, check, judge
from physlm.worlds.brevo.evaluate import answer, first_per_size, summarize
from physlm.worlds.brevo.frames import read_instances, read_layout
from physlm.worlds.brevo.graph import Instance
from physlm.worlds.brevo.sample import instance
from physlm.worlds.brevo.params import BrevoGenerateParams
from physlm.worlds.brevo.text import ANSWER_ID, Layout, flat_encode
from physlm.worlds.brevo.tokenize import tokenize

# --------------------------------------------------------------------------------------------- oracle


def reach(inst: Instance) -> tuple[list[int], np.ndarray]:
    """(vertices, R) with R[i, j] true when vertex j depends on vertex i through one or more edges: the transitive
    closure of the edge list by repeated boolean matrix products."""
    vs = sorted(inst.vertices)
    at = {v: i for i, v in enumerate(vs)}
    R = np.zeros((len(vs), len(vs)), dtype=bool)
    for u, v in inst.edges:
        R[at[u], at[v]] = True
    while True:
        step = R | ((R.astype(np.int64) @ R.astype(np.int64)) > 0)
        if (step == R).all():
            return vs, R
        R = step


def oracle(inst: Instance, answer: list[int | None]) -> bool:
    """Right when the answer is exactly the query and everything it depends on, each once, and no vertex comes
    after one that depends on it."""
    vs, R = reach(inst)
    at = {v: i for i, v in enumerate(vs)}
    if any(v not in at for v in answer) or len(set(answer)) != len(answer):
        return False
    q = at[inst.query]
    if {at[v] for v in answer} != {i for i in range(len(vs)) if R[i, q]} | {q}:
        return False
    return not any(R[at[b], at[a]] for a, b in itertools.combinations(answer, 2))


def forward_order(inst: Instance, rng: np.random.Generator) -> list[int]:
    """Another valid answer: a forward Kahn pass over the answer set, the next vertex uniform among the ready ones."""
    members, order = set(inst.answer), []
    while len(order) < len(members):
        ready = [v for v in sorted(members - set(order)) if all(u in order for u in inst.parents[v])]
        order.append(ready[int(rng.integers(len(ready)))])
    return order


def some_instances(count: int = 60) -> list[Instance]:
    return [instance(1, split, i, N=N, query=rule, sizes=[7, 15])
            for i in range(count) for split, N, rule in (("train", 30, "quarter"), ("test", 16, "last"), ("sizes", 30, "quarter"))]


def test_answers_are_the_closure_in_a_valid_order() -> None:
    for inst in some_instances():
        assert oracle(inst, list(inst.answer)), inst
        assert inst.answer[-1] == inst.query and len(inst.answer) >= 2


def test_the_checker_agrees_with_the_oracle() -> None:
    rng = np.random.default_rng(0)
    seen = Counter()
    for inst in some_instances(40):
        gold = list(inst.answer)
        outside = [v for v in inst.vertices if v not in gold]
        candidates = [gold, forward_order(inst, rng), list(rng.permutation(gold)), gold[1:], gold[:-1], gold + gold[-1:],
                      [gold[0], *gold], [*gold[:-1], None, gold[-1]]]
        candidates += [gold[:k] + [gold[k + 1], gold[k]] + gold[k + 2:] for k in range(len(gold) - 1)]
        if outside:
            candidates += [[outside[0], *gold], [*gold[:-1], outside[-1], gold[-1]]]
        for cand in candidates:
            cand = [int(v) if v is not None else None for v in cand]
            verdict = check(inst.parents, inst.query, cand)
            assert verdict.correct == oracle(inst, cand), (inst, cand, verdict)
            assert verdict.reason in ("", *REASONS)
            seen[verdict.reason] += 1
    assert {"", "unknown", "duplicate", "extra", "missing", "order"} <= set(seen), seen


def test_hand_made_graph() -> None:
    """1 -> 3, 2 -> 3, 3 -> 4, 5 -> 4, 6 alone: the query 4 needs {1, 2, 3, 5} before it."""
    parents = {1: (), 2: (), 3: (1, 2), 4: (3, 5), 5: (), 6: ()}
    assert check(parents, 4, [1, 2, 3, 5, 4]).correct and check(parents, 4, [5, 2, 1, 3, 4]).correct
    assert check(parents, 4, [1, 3, 2, 5, 4]).reason == "order"
    assert check(parents, 4, [1, 2, 5, 4, 3]).reason == "order"  # the query before one of its ancestors
    assert check(parents, 4, [1, 2, 3, 5]).reason == "missing"  # the query itself left out
    assert check(parents, 4, [1, 2, 3, 5, 6, 4]).reason == "extra"
    assert check(parents, 4, [1, 2, 2, 3, 5, 4]).reason == "duplicate"
    assert check(parents, 4, [1, 2, 3, 5, 9, 4]).reason == "unknown"
    assert check(parents, 3, [2, 1, 3]).correct and not check(parents, 3, [2, 1, 3, 4]).correct


# ------------------------------------------------------------------------------------------ structure


def test_degrees_leaves_and_queries() -> None:
    leaves, indegree = Counter(), []
    for i in range(400):
        inst = instance(2, "test", i, N=21)
        out = Counter(u for u, _ in inst.edges)
        assert max(out.values()) <= 4 and all(len(p) <= 4 for p in inst.parents.values())
        assert len(set(inst.edges)) == len(inst.edges) == sum(len(p) for p in inst.parents.values())
        position = {v: k for k, v in enumerate(inst.vertices)}
        assert all(position[u] < position[v] for u, v in inst.edges), "a parent is always created earlier"
        run = next(k for k, v in enumerate(inst.vertices) if inst.parents[v])
        assert 1 <= run <= (21 - 1) // 4 + 1
        leaves[run] += 1
        assert all(inst.parents[v] for v in inst.vertices[run:]), "every later vertex finds a parent at this size"
        assert position[inst.query] >= 3 * 21 // 4 and inst.parents[inst.query]
        indegree += [len(inst.parents[v]) for v in inst.vertices[run + 4:]]
        assert sorted(inst.vertices) == sorted(set(inst.vertices)) and set(inst.vertices) <= set(range(1, 22))
    assert set(leaves) == set(range(1, 7)) and min(leaves.values()) > 40, leaves  # U{1..6}
    assert abs(np.mean(indegree) - 2.5) < 0.1 and set(indegree) == {1, 2, 3, 4}
    last = [instance(3, "test", i, N=21, query="last") for i in range(50)]
    assert all(inst.query == inst.vertices[-1] for inst in last)
    quarter = Counter(instance(3, "test", i, N=21).vertices.index(instance(3, "test", i, N=21).query) for i in range(300))
    assert set(quarter) == set(range(15, 21)), quarter  # every vertex of the last quarter can be asked


def test_training_sizes_follow_the_law() -> None:
    sizes = Counter(instance(4, "train", i, N=20).n for i in range(4000))
    p = size_probabilities(20)
    assert set(sizes) <= set(range(3, 21))
    assert max(abs(sizes[n] / 4000 - p[n - 3]) for n in range(3, 21)) < 0.02
    assert {instance(4, "test", i, N=20).n for i in range(5)} == {20}
    assert [instance(4, "sizes", i, N=20, sizes=[5, 9]).n for i in range(4)] == [5, 9, 5, 9]


def test_sizes_match_the_released_generator() -> None:
    """SPEC 11.1.2, measured on the released code at n = N (its query rule: the last vertex)."""
    one = Layout("tokens", 110)
    test = [instance(5, "test", i, N=110, query="last") for i in range(150)]
    tokens = [len(one.sequence(inst)) for inst in test]
    assert abs(np.mean(tokens) - 519) < 15 and max(tokens) < 720, (np.mean(tokens), max(tokens))
    assert abs(np.mean([len(inst.answer) for inst in test]) - 39) < 3
    assert abs(np.mean([inst.depth for inst in test]) - 2.6) < 0.3
    two = Layout("words", 50)
    words = [len(two.sequence(instance(5, "test", i, N=50, query="last", word_shape=two.word_shape))) for i in range(100)]
    assert abs(np.mean(words) - 761) < 25, np.mean(words)
    train = [len(one.sequence(instance(5, "train", i, N=110, query="last"))) for i in range(1000)]
    assert 165 < np.mean(train) < 205, np.mean(train)


def test_brevo2_words() -> None:
    two = Layout("words", 30)
    for i in range(30):
        inst = instance(6, "train", i, N=30, word_shape=two.word_shape)
        found = list(inst.words.values())
        assert set(inst.words) == set(inst.vertices) and len(set(found)) == len(found)
        for w in found:
            assert 2 <= len(w) <= 4 and all(1 <= s <= 4 for s in w[:-1]) and 5 <= w[-1] <= 8
        ids = two.sequence(inst)
        assert max(ids) < two.vocab().size and ids.count(ANSWER_ID) == 1
        assert two.read_answer(ids[len(two.prompt(inst)):], inst) == list(inst.answer)


# ----------------------------------------------------------------------------------------------- files


def params(**overrides) -> BrevoGenerateParams:
    base = {"N": 12, "names": "tokens", "train_examples": 300, "test_examples": 40, "size_examples": 6, "workers": 1}
    return BrevoGenerateParams(**(base | overrides))


@pytest.mark.parametrize("names", ["tokens", "words"])
def test_deterministic_worker_independent_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, names: str) -> None:
    monkeypatch.setattr(brevo_generate, "CHUNK", 70)
    one, two = tmp_path / "one", tmp_path / "two"
    for out, workers in ((one, 1), (two, 2)):
        out.mkdir()
        counts = brevo_generate.generate(params(names=names, workers=workers), 7, out)
    assert counts == {"train": 300, "test": 40, "sizes": 18}
    for name in ("train.parquet", "test.parquet", "sizes.parquet", "brevo.json"):
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    layout = read_layout(one)
    assert layout == Layout(names, 12)
    back = read_instances(one / "train.parquet", layout)
    for i in (0, 150, 299):
        made = instance(7, "train", i, N=12, word_shape=layout.word_shape)
        assert back[i].edges == made.edges and back[i].answer == made.answer and back[i].words == made.words
        assert {v: set(p) for v, p in back[i].parents.items()} == {v: set(p) for v, p in made.parents.items()}
        assert layout.sequence(back[i]) == layout.sequence(made)
    assert [inst.n for inst in read_instances(one / "sizes.parquet", layout)][:3] == [3, 6, 9]
    assert set(pl.read_parquet(one / "test.parquet")["n"]) == {12}


def test_params_and_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="distinct words"):
        params(names="words", N=40, word_vocab=2, word_lengths=(2, 3))
    with pytest.raises(ValueError, match="eval_sizes"):
        params(eval_sizes=[2])
    assert params().sizes() == [3, 6, 9] and params(N=110).sizes() == [28, 55, 82]
    brevo_generate.generate(params(), 0, tmp_path)
    pl.read_parquet(tmp_path / "test.parquet").drop("depth").write_parquet(tmp_path / "bad.parquet")
    with pytest.raises(DataError, match="missing column"):
        read_instances(tmp_path / "bad.parquet", Layout("tokens", 12))
    (tmp_path / "brevo.json").write_text("{}")
    with pytest.raises(DataError, match="missing key"):
        read_layout(tmp_path)


def test_loss_mask(tmp_path: Path) -> None:
    layout = Layout("words", 12)
    insts = [instance(8, "train", i, N=12, word_shape=layout.word_shape) for i in range(20)]
    flat, offsets, loss = flat_encode(layout, insts)
    assert len(flat) == len(loss) == offsets[-1] and loss.dtype == np.uint8
    for k, inst in enumerate(insts):
        ids, mask = flat[offsets[k]:offsets[k + 1]], loss[offsets[k]:offsets[k + 1]]
        start = list(ids).index(ANSWER_ID)
        assert not mask[:start].any() and mask[start:].all()  # <ans> and the answer; the engine's <eos> after it
        assert len(ids) - start == layout.answer_length(inst)  # <ans> + answer = answer tokens + <eos>
    brevo_generate.generate(params(), 0, tmp_path)
    tokenized = tokenize(tmp_path, SimpleNamespace(context=128, pack="sentences"))
    out = tokenized.splits["train"]()
    assert len(out) == 3 and tokenized.eos_loss is True and len(out[2]) == len(out[0])
    assert tokenized.meta["layout"]["N"] == 12 and tokenized.vocab == Layout("tokens", 12).vocab()
    with pytest.raises(DataError, match="exceeds a window"):
        tokenize(tmp_path, SimpleNamespace(context=16, pack="sentences"))


# --------------------------------------------------------------------------------------------- scoring


def scripted(layout: Layout, plans: dict[tuple[int, ...], list[int]]) -> RuleModel:
    """A stand-in GPT that, after each prompt of `plans`, writes that plan (token ids), then <eos> for ever."""
    lengths = sorted({len(p) for p in plans})

    def rule(prefix: tuple[int, ...]) -> int:
        for n in lengths:
            plan = plans.get(prefix[:n])
            if plan is not None:
                k = len(prefix) - n
                return plan[k] if k < len(plan) else Vocab.eos_id
        return Vocab.eos_id

    return RuleModel(layout.vocab().size, 512, rule)


def faults(layout: Layout, insts: list[Instance]) -> list[tuple[list[int], bool, str]]:
    """(plan, correct, reason) for six instances: the gold answer, another valid order, a wrong order, a malformed
    answer, a vertex missing, a vertex twice."""
    rng = np.random.default_rng(1)

    def ids(inst: Instance, order) -> list[int]:
        return [t for v in order for t in layout.name(inst, v)] + [Vocab.eos_id]

    a, b, c, d, e, f = insts
    other = next(o for o in (forward_order(b, rng) for _ in range(50)) if o != list(b.answer))
    swapped = [c.answer[-1], *c.answer[:-1]]  # the query first
    broken = ids(d, d.answer)[:-2] + [Vocab.eos_id] if layout.names == "words" else ids(d, d.answer)[:-1] + [ANSWER_ID, Vocab.eos_id]
    return [(ids(a, a.answer), True, ""), (ids(b, other), True, ""), (ids(c, swapped), False, "order"),
            (broken, False, "malformed"), (ids(e, e.answer[1:]), False, "missing"),
            (ids(f, [f.answer[0], *f.answer]), False, "duplicate")]


@pytest.mark.parametrize("names", ["tokens", "words"])
def test_scoring_against_known_answers(names: str) -> None:
    layout = Layout(names, 14)
    pool = [instance(9, "test", i, N=14, word_shape=layout.word_shape) for i in range(40)]
    rng = np.random.default_rng(1)
    several = [inst for inst in pool[5:] if any(forward_order(inst, rng) != list(inst.answer) for _ in range(50))]
    insts = [pool[0], several[0], *pool[1:5]]  # six different instances, the second with several valid orders
    cases = faults(layout, insts)
    model = scripted(layout, {tuple(layout.prompt(inst)): plan for inst, (plan, _, _) in zip(insts, cases)})
    attempts = answer(model, layout, insts, batch_size=4, device=torch.device("cpu"))
    assert [(a.correct, a.reason) for a in attempts] == [(ok, why) for _, ok, why in cases]
    for inst, a, (plan, _, _) in zip(insts, attempts, cases):
        gold = layout.sequence(inst)[len(layout.prompt(inst)):]
        assert a.forced_total == len(gold) == layout.answer_length(inst)
        assert a.forced_correct == sum((plan[k] if k < len(plan) else Vocab.eos_id) == g for k, g in enumerate(gold))
        assert list(a.generation) == plan[: plan.index(Vocab.eos_id) + 1]
    found = summarize(attempts)
    assert found["n"] == 6 and found["accuracy"] == pytest.approx(2 / 6)
    assert found["reasons"] == {"order": 1, "malformed": 1, "missing": 1, "duplicate": 1}
    assert found["token_accuracy"] == pytest.approx(sum(a.forced_correct for a in attempts) / sum(a.forced_total for a in attempts))
    assert found["forced_exact"] == pytest.approx(1 / 6)  # only the gold plan matches the gold tokens throughout
    assert found["by_n"] == {"14": {"count": 6, "accuracy": found["accuracy"], "token_accuracy": found["token_accuracy"]}}
    assert judge(layout, insts[0], cases[0][0][:-1]).reason == "malformed"  # no <eos>: unterminated
    sizes = [instance(9, "sizes", i, N=14, sizes=[4, 8]) for i in range(6)]
    assert [i.n for i in first_per_size(sizes, 2)] == [4, 8, 4, 8]


# ------------------------------------------------------------------------------------- the whole study

TINY = {
    "model": {"depth": 1, "width": 32, "heads": 2},
    "train": {"steps": 20, "batch_size": 8, "micro_batch_size": 8, "lr": 1.0e-2, "warmup_steps": 2, "eval_every": 10,
              "eval_batches": 1, "checkpoint_every": 10, "log_every": 5},
}
PROBE = {"examples": 24, "train_fraction": 0.5, "steps": 10, "lr": 5.0e-2, "batch_size": 8, "control": True}
EVALUATE = {"examples": 10, "size_examples": 3, "batch_size": 8, "control": True}


def tiny_brevo_params() -> dict:
    """The repo's shared sections with the world's probe/evaluate defaults, tiny Brevo1 and Brevo2 datasets and
    a study on each."""
    from physlm.config import merge

    repo = yaml.safe_load((ROOT / "params.yaml").read_text())
    shared = merge({k: repo[k] for k in ("seed", "nproc", "model", "train", "probe", "evaluate")}, TINY)
    shared["probe"]["brevo"], shared["evaluate"]["brevo"] = dict(PROBE), dict(EVALUATE)
    data = {"brevo1_tiny": ({"N": 10, "names": "tokens"}, 128), "brevo2_tiny": ({"N": 8, "names": "words"}, 192)}
    datasets = {name: {"world": "brevo", "generate": {**gen, "train_examples": 400, "test_examples": 120, "size_examples": 4,
                                                      "workers": 1},
                       "tokenize": {"context": context, "pack": "sentences"}} for name, (gen, context) in data.items()}
    studies = {name: {"world": "brevo", "data": name, "model": {}, "train": {}, "probe": {}, "evaluate": {}} for name in data}
    return shared | {"datasets": datasets, "studies": studies}


def test_tiny_studies_run_every_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_thread) -> None:
    import stages.evaluate
    import stages.generate
    import stages.probe
    import stages.report
    import stages.tokenize
    import stages.train
    from physlm.cli import run_stage

    monkeypatch.setenv("PHYSLM_TRACKING", "0")
    monkeypatch.chdir(tmp_path)
    params = tiny_brevo_params()
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for name in params["studies"]:
        for stage, module in (("generate", stages.generate), ("tokenize", stages.tokenize), ("train", stages.train),
                              ("probe", stages.probe), ("evaluate", stages.evaluate)):
            run_stage(stage, module.main, [name])
        evaluated = json.loads((tmp_path / f"metrics/{name}/detail/evaluate.json").read_text())
        assert evaluated["test"]["n"] == 10 and evaluated["sizes"]["n"] == 9 and 0 <= evaluated["test"]["accuracy"] <= 1
        assert set(evaluated["test"]["by_n"]) == {str(evaluated["N"])} and 0 < evaluated["test"]["token_accuracy"] <= 1
        raw = tmp_path / f"data/{name}/raw"  # evaluated instances that are training instances (vertices, edges, query, words)
        key = lambda r: (tuple(r["vertices"]), tuple(r["edge_parent"]), tuple(r["edge_child"]), r["query"],  # noqa: E731
                         tuple(map(tuple, r.get("words") or [])))
        train = {key(r) for r in pl.read_parquet(raw / "train.parquet").iter_rows(named=True)}
        chosen = {"test": pl.read_parquet(raw / "test.parquet").head(10),
                  "sizes": pl.read_parquet(raw / "sizes.parquet").group_by("n", maintain_order=True).head(3)}
        assert evaluated["in_train"] == pytest.approx(
            {s: float(np.mean([key(r) in train for r in f.iter_rows(named=True)])) for s, f in chosen.items()})
        assert set(json.loads((tmp_path / f"metrics/{name}/evaluate.json").read_text())) == \
            {f"{s}_{k}" for s in ("test", "sizes", "control") for k in ("accuracy", "token_accuracy")}
        probe = pl.read_csv(tmp_path / f"metrics/{name}/probe/probe.csv")
        assert probe["layer"].to_list() == [0, 1, 0, 1] and set(probe["target"]) == {"depth"}
        meta = json.loads((tmp_path / f"data/{name}/tokens/meta.json").read_text())
        assert meta["layout"]["names"] == params["datasets"][name]["generate"]["names"]
        check_generations(tmp_path, name, evaluated)
    run_stage("report", stages.report.main, [])
    summary = (tmp_path / "reports/summary.md").read_text()
    assert "## Brevo" in summary and "| brevo1_tiny | brevo2_tiny |" in summary
    assert (tmp_path / "reports/brevo_accuracy.png").is_file()


# ------------------------------------------------------------------------------------------------ preset


def check_generations(root: Path, study: str, evaluated: dict) -> None:
    """generations/<study>/evaluate.parquet: a row per instance answered; the saved output, read back as tokens
    and judged by the checker against the instance at its index, gives the saved verdict and reason, and the
    metrics' accuracies."""
    frame = generations.read(root, study, {"n": pl.Int64, "query": pl.Int64, "expected": pl.String, "forced_correct": pl.Int64,
                                           "forced_total": pl.Int64})
    raw = root / "data" / study / "raw"
    layout = read_layout(raw)
    ids = {s: i for i, s in enumerate(layout.vocab().symbols)}
    files = {name: read_instances(raw / f"{name}.parquet", layout) for name in ("test", "sizes")}
    for row in frame.iter_rows(named=True):
        inst = files["sizes" if row["set"] == "sizes" else "test"][row["index"]]
        verdict = judge(layout, inst, [ids[w] for w in row["output"].split()])
        assert (verdict.correct, verdict.reason or None) == (row["verdict"], row["error"]), row
        assert (row["n"], row["query"]) == (inst.n, inst.query)
    generations.matches_metrics(frame, evaluated, ("set",), "accuracy", "n", {"test", "sizes", "control"})
    assert frame.height == 10 + 9 + 10


def test_brevo_paper_preset(tmp_path: Path) -> None:
    """The grid: a dataset per variant and N, a study per dataset x size x architecture with the paper's recipe;
    params.yaml validates once the engine has the Llama / NoPE / partial-RoPE options (before, the preset stops
    with one line naming the key and leaves the file as it was)."""
    from physlm.params import ModelParams
    from physlm.presets import main
    from physlm.worlds.brevo.presets import ARCHS, brevo_paper

    params = {"probe": {}, "evaluate": {}, "datasets": {"old": {"world": "brevo"}}, "studies": {"old": {"world": "brevo", "data": "old"}}}
    names = brevo_paper(params, sizes=["12L768D"], archs=["rope16_canon"])
    assert names == [f"p41_brevo1_N{N}_12L768D_rope16_canon" for N in (70, 90, 110)] + \
        [f"p41_brevo2_N{N}_12L768D_rope16_canon" for N in (30, 40, 50)]
    one, two = params["studies"]["p41_brevo1_N110_12L768D_rope16_canon"], params["studies"]["p41_brevo2_N30_12L768D_rope16_canon"]
    assert (one["train"]["steps"], one["train"]["batch_size"], two["train"]["steps"], two["train"]["batch_size"]) == \
        (150_000, 256, 200_000, 192)
    assert one["model"]["rope_dim"] == 16 and one["model"]["canon"] == "ABCD" and one["train"]["weight_decay"] == 0.03
    assert params["datasets"]["p41_brevo2_N30"]["tokenize"]["context"] == 1536
    assert params["datasets"]["p41_brevo2_N30"]["generate"]["names"] == "words" and "old" not in params["datasets"]
    path = tmp_path / "params.yaml"
    path.write_text((ROOT / "params.yaml").read_text())
    before = path.read_bytes()
    if "block" in ModelParams.model_fields:
        main(["brevo-paper", "--params", str(path), "--N", "70,30", "--archs", "rope,nope"])
        assert {n for n, s in yaml.safe_load(path.read_text())["studies"].items() if s["world"] == "brevo"} == \
            {f"p41_brevo{k}_N{N}_12L768D_{a}" for k, N in ((1, 70), (2, 30)) for a in ("rope", "nope")}
    else:
        with pytest.raises(SystemExit, match="block"):
            main(["brevo-paper", "--params", str(path), "--N", "70"])
        assert path.read_bytes() == before
    with pytest.raises(SystemExit, match="unknown or empty choice 60"):
        main(["brevo-paper", "--params", str(path), "--N", "60"])
    assert set(ARCHS) == {"rope", "rope_canon", "nope", "nope_canon", "rope16", "rope16_canon"}


def test_the_showcase_runs_the_presets_demo() -> None:
    """params.yaml's Brevo miniature is brevo/presets.py's DEMO_* (which SUITE adds seeds and the NoPE pair to)."""
    from physlm.worlds.brevo.presets import DEMO_DATASET, DEMO_STUDIES, SUITE

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert params["datasets"]["brevo_demo"] == DEMO_DATASET
    assert {k: v for k, v in params["studies"].items() if v["world"] == "brevo"} == DEMO_STUDIES
    studies = SUITE["studies"]
    assert all(studies[f"{name}_s{seed}"]["train"]["seed"] == seed for name in DEMO_STUDIES for seed in (1, 2))
    assert studies["brevo_rope_canon"]["model"]["canon"] == "ABCD" and studies["brevo_rope_canon_s2"]["train"]["seed"] == 2
    assert DEMO_STUDIES["brevo_nope"]["model"]["pos"] == "nope" and DEMO_STUDIES["brevo_nope_canon"]["model"]["canon"] == "ABCD"
    assert not set(studies) & set(params["studies"]), "the suite adds studies; it never replaces the showcase's"
