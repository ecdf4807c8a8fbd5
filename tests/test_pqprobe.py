"""P- and Q-probes (physlm.worlds.bio.pqprobe) on a tiny GPT and synthetic sequences whose labels are tokens at known
places: the probe starts as the model and trains only the update and heads (the caller's model untouched);
states come from the asked layer at the asked positions; a P-probe decodes a label token at the positions
after it and, before it, never beats the majority baseline (exact: test examples come in groups that share
everything but the label tokens, so a causal probe predicts one class per group before them); a Q-probe
learns a token label for held-out names; scores against hand counts; input validation; reports."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from physlm.model import GPT, GPTConfig
from physlm.worlds.bio.pqprobe import (
    TASKS,
    Biography,
    Inputs,
    NameQuery,
    StateProbe,
    Task,
    fit_probe,
    offset_buckets,
    rows,
    run_pprobe,
    run_qprobe,
    score_task,
    summary,
)
from physlm.lora import LowRankEmbedding
from physlm.bios.people import ATTRIBUTES
from physlm.worlds.bio.report import plot_pq_rows

pytestmark = pytest.mark.usefixtures("one_thread")

VOCAB, LENGTH = 24, 14
FILLERS = range(3, 12)
POSITIONS = (1, 3, 5, 7, 9, 11)  # read position k is right before the k-th attribute's token at POSITIONS[k] + 1
CITY, MAJOR = Task("birth_city", "first"), Task("major", "whole")  # attributes 1 and 3 of ATTRIBUTES
SLOT_TOKEN = {CITY: POSITIONS[1] + 1, MAJOR: POSITIONS[3] + 1}  # tokens 4 and 8 hold their values
VALUES = {CITY: 12, MAJOR: 16}  # first id of each task's four value tokens
CLASS = (0, 0, 1, 2)  # class of value token 0..3: class 0 is the majority (one half)


def tiny_gpt(scale: float = 1.0, seed: int = 0, **kw) -> GPT:
    """A random GPT; scale multiplies its matrices (at GPT-2's init std, attention moves little from token
    to token, and the probe would need many more steps to pull a label forward)."""
    torch.manual_seed(seed)
    model = GPT(GPTConfig(**{"vocab_size": VOCAB, "context": 16, "depth": 2, "width": 32, "heads": 2, **kw}))
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.mul_(scale)
    return model


def biography(tokens: np.ndarray, values: dict[Task, int], person: int) -> Biography:
    t = tokens.copy()
    for task, v in values.items():
        t[SLOT_TOKEN[task]] = VALUES[task] + v
    return Biography(tuple(map(int, t)), POSITIONS, ATTRIBUTES, tuple(CLASS[values[k]] for k in (CITY, MAJOR)), person)


def random_bios(n: int, seed: int) -> list[Biography]:
    rng = np.random.default_rng(seed)
    return [biography(rng.choice(FILLERS, LENGTH), {CITY: int(rng.integers(4)), MAJOR: int(rng.integers(4))}, i)
            for i in range(n)]


def grouped_bios(groups: int, seed: int, first: int) -> list[Biography]:
    """Per group one random filler sequence with each of the 4 x 4 pairs of value tokens."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(groups):
        fillers = rng.choice(FILLERS, LENGTH)
        for a, b in itertools.product(range(4), repeat=2):
            out.append(biography(fillers, {CITY: a, MAJOR: b}, first + len(out)))
    return out


P_TASKS = {CITY: 3, MAJOR: 3}


@pytest.fixture(scope="module")
def pprobe():
    return run_pprobe(tiny_gpt(scale=5.0), P_TASKS, random_bios(2000, 0), grouped_bios(20, 1, 10_000), steps=200,
                      lr=1e-2, shared=False)


def test_pprobe_decodes_labels_after_their_token_and_never_before(pprobe) -> None:
    assert (pprobe.probe, pprobe.layer, pprobe.rank, pprobe.shared) == ("P", 2, 2, False)
    for s in pprobe.scores:
        first_after = next(k for k, p in enumerate(POSITIONS) if p >= SLOT_TOKEN[s.task])
        assert s.majority_class == 0 and s.majority == 0.5  # value tokens 0, 1 of 4 in every group
        assert all(acc <= s.majority for acc in s.accuracy[:first_after]), s
        assert all(acc >= 0.9 for acc in s.accuracy[first_after:]), s
        slot = ATTRIBUTES.index(s.task.attribute)
        assert [b.offset for b in s.offsets] == [k - slot for k in range(6)]
        assert all(b.n == 320 and b.majority == 0.5 for b in s.offsets)
        assert [b.accuracy for b in s.offsets] == list(s.accuracy)  # one order for all: offsets are positions
        assert s.train_loss < 0.9  # below the label entropy, 1.04 nats


def test_layer_zero_sees_only_the_token_read() -> None:
    """The embedding output at a read position is its own filler token, shared by the whole group."""
    result = run_pprobe(tiny_gpt(), P_TASKS, random_bios(400, 0), grouped_bios(10, 1, 10_000), steps=40, layer=0)
    assert result.layer == 0 and result.shared
    for s in result.scores:
        assert all(acc <= s.majority for acc in s.accuracy), s


def test_states_are_read_at_the_positions_of_the_asked_layer() -> None:
    model = tiny_gpt(depth=3)
    idx = torch.randint(0, VOCAB, (4, 9))
    at = torch.tensor([[0, 3, 8], [1, 2, 3], [5, 6, 7], [0, 4, 8]])
    hidden = model.hidden_states(idx)
    for layer in (0, 2, 3):
        probe = StateProbe(model, [3, 5], positions=3, rank=2, layer=layer, norm="layer", seed=0)
        with torch.no_grad():
            got = probe.states(idx, at)
            logits = probe(idx, at)
        want = torch.stack([hidden[layer, b, at[b]] for b in range(4)])
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
        assert [tuple(x.shape) for x in logits] == [(4, 3, 3), (4, 3, 5)]
        assert all(torch.equal(x, torch.zeros_like(x)) for x in logits)  # zero heads: uniform at first


def test_update_starts_at_zero_and_trains_only_the_update_and_heads() -> None:
    model = tiny_gpt()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    requires = {k: p.requires_grad for k, p in model.named_parameters()}
    probe = StateProbe(model, [3], positions=6, rank=2, layer=2, norm="layer", seed=0)
    assert isinstance(probe.model.wte, LowRankEmbedding) and not probe.model.wte.delta().any()
    bios = random_bios(60, 0)
    data = Inputs(tuple(b.tokens for b in bios), np.array([b.positions for b in bios]),
                  np.array([b.labels[:1] for b in bios]))
    fit = fit_probe(model, data, [3], rank=2, norm="layer", layer=2, steps=6, batch_size=20, lr=1e-2,
                    weight_decay=0.3, seed=0)
    trainable = {k for k, p in fit.probe.named_parameters() if p.requires_grad}
    assert trainable == {"model.wte.a", "model.wte.b", "heads.0.norm.weight", "heads.0.norm.bias",
                         "heads.0.weight", "heads.0.bias"}
    assert fit.probe.model.wte.delta().abs().max() > 0 and fit.losses.shape == (6, 1)
    frozen = {k.removeprefix("model."): v for k, v in fit.probe.state_dict().items() if k.startswith("model.")}
    for k, v in before.items():
        assert torch.equal(model.state_dict()[k], v), k  # the caller's model
        assert torch.equal(frozen[k.replace("wte.", "wte.base.")], v), k  # the probe's frozen copy
    assert {k: p.requires_grad for k, p in model.named_parameters()} == requires
    assert not fit.probe.training and not fit.probe.model.training


def test_frozen_model_dropout_follows_the_probe_mode() -> None:
    probe = StateProbe(tiny_gpt(dropout=0.5), [2], positions=2, rank=2, layer=2, norm="layer", seed=0)
    idx, at = torch.randint(0, VOCAB, (2, 6)), torch.tensor([[1, 4], [2, 5]])
    with torch.no_grad():
        probe.train()
        assert not torch.equal(probe.states(idx, at), probe.states(idx, at))
        probe.eval()
        assert torch.equal(probe.states(idx, at), probe.states(idx, at))


def name_queries() -> tuple[list[NameQuery], list[NameQuery]]:
    """`<start> x y z <end>` (ids 1, 3+x, 9+y, 15+z, 2): birth month from x, employer from z; people split."""
    people = list(itertools.product(range(6), repeat=3))
    month, employer = (0, 0, 0, 1, 1, 2), (1, 0, 2, 2, 1, 2)
    queries = [NameQuery((1, 3 + x, 9 + y, 15 + z, 2), (month[x], employer[z]), i)
               for i, (x, y, z) in enumerate(people)]
    perm = np.random.default_rng(0).permutation(len(people))
    return [queries[i] for i in perm[:150]], [queries[i] for i in perm[150:]]


@pytest.fixture(scope="module")
def qprobe():
    return run_qprobe(tiny_gpt(), {TASKS[0]: 3, Task("employer", "whole"): 3}, *name_queries(), steps=150)


def test_qprobe_learns_a_token_label_of_held_out_names(qprobe) -> None:
    _, test = name_queries()
    assert (qprobe.probe, qprobe.rank, qprobe.n_train, qprobe.n_test) == ("Q", 16, 150, 66)
    for t, s in enumerate(qprobe.scores):
        truth = np.array([q.labels[t] for q in test])
        assert s.majority == pytest.approx(np.mean(truth == s.majority_class))
        assert len(s.accuracy) == 1 and s.offsets == ()
        assert s.accuracy[0] >= 0.95 and s.accuracy[0] > s.majority + 0.3, s


def test_scores_by_hand() -> None:
    train = np.array([2, 2, 0, 1, 2, 0])  # majority class 2
    truth = np.array([2, 0, 1, 2])
    pred = np.array([[2, 2, 0], [1, 0, 0], [1, 1, 0], [0, 2, 2]])  # [N=4, P=3]
    slots = np.array([0, 1, 2, 1])
    s = score_task(CITY, 3, pred, truth, train, slots, 0.5)
    assert (s.majority_class, s.majority) == (2, 0.5)
    assert s.accuracy == (0.5, 1.0, 0.5)  # hits per column: 2/4, 4/4, 2/4
    # offsets k - slot: row 0 (0,1,2), row 1 (-1,0,1), row 2 (-2,-1,0), row 3 (-1,0,1)
    got = {b.offset: (b.accuracy, b.majority, b.n) for b in s.offsets}
    assert got == {-2: (1.0, 0.0, 1), -1: (1 / 3, 1 / 3, 3), 0: (3 / 4, 1 / 2, 4), 1: (1.0, 2 / 3, 3), 2: (0.0, 1.0, 1)}
    assert offset_buckets(pred, truth, slots, 2) == s.offsets
    tie = score_task(CITY, 3, pred[:, :1], truth, np.array([1, 0, 1, 0]), None, 0.0)
    assert tie.majority_class == 0 and tie.majority == 0.25 and tie.offsets == ()


def test_bad_inputs_are_one_clear_error() -> None:
    model, bios = tiny_gpt(), random_bios(4, 0)
    ok = {"steps": 1, "batch_size": 2}
    bad = [
        (bios[:2], bios[1:], "people in both"),
        ([], bios, "need both"),
        ([Biography(bios[0].tokens, POSITIONS[::-1], ATTRIBUTES, (0, 0), 9)], bios[1:], "must increase"),
        ([Biography(bios[0].tokens, POSITIONS, ATTRIBUTES[::-1][:5] + ("x",), (0, 0), 9)], bios[1:], "permutation"),
        ([Biography(bios[0].tokens, POSITIONS[:5], ATTRIBUTES, (0, 0), 9)], bios[1:], "5 positions"),
        ([Biography(bios[0].tokens, POSITIONS, ATTRIBUTES, (0, 3), 9)], bios[1:], "outside 0..2"),
        ([Biography(bios[0].tokens, POSITIONS, ATTRIBUTES, (0,), 9)], bios[1:], "1 labels for 2 tasks"),
        ([Biography(bios[0].tokens * 2, POSITIONS, ATTRIBUTES, (0, 0), 9)], bios[1:], "exceeds the model context"),
    ]
    for train, test, message in bad:
        with pytest.raises(ValueError, match=message):
            run_pprobe(model, P_TASKS, train, test, **ok)
    with pytest.raises(ValueError, match="layer 3 is outside"):
        run_pprobe(model, P_TASKS, bios[:2], bios[2:], layer=3, **ok)
    with pytest.raises(ValueError, match="causal"):
        queries = [NameQuery((1, 2), (0,), i) for i in range(3)]
        run_qprobe(tiny_gpt(causal=False), {CITY: 3}, queries[:2], queries[2:], **ok)
    with pytest.raises(ValueError, match="at least 2"):
        run_qprobe(model, {CITY: 3}, queries[:1], queries[2:], **ok)
    with pytest.raises(ValueError, match="Task.kind"):
        Task("major", "last")
    with pytest.raises(ValueError, match="Task.attribute"):
        Task("name", "first")
    assert len(TASKS) == 11 and TASKS[0] == Task("birth_date", "first")
    assert {t.kind for t in TASKS[1:]} == {"first", "whole"} and len(set(TASKS)) == 11


def test_rows_summary_json_and_plots(pprobe, qprobe, tmp_path) -> None:
    table = rows(pprobe)
    assert len(table) == 2 * (6 + 6) and {r["axis"] for r in table} == {"position", "offset"}
    assert len({tuple(sorted(r)) for r in (*table, *rows(qprobe))}) == 1  # one set of columns for the CSV
    flat = summary(pprobe)
    assert flat["birth_city_first_p2"] == pprobe.scores[0].accuracy[2]
    assert flat["major_whole_d-3"] == pprobe.scores[1].accuracy[0] and flat["major_whole_majority"] == 0.5
    assert summary(qprobe)["employer_whole"] == qprobe.scores[1].accuracy[0]
    back = json.loads(json.dumps(pprobe.to_json()))
    assert back["scores"][1]["task"] == {"attribute": "major", "kind": "whole"}
    as_read = [{"model": model, **{k: str(v) for k, v in r.items()}}  # as the report reads probe.csv back
               for model in ("trained", "control") for r in rows(pprobe) + rows(qprobe)]
    plot_pq_rows(as_read, "synthetic", tmp_path)
    for name in ("pprobe_synthetic.png", "qprobe_synthetic.png"):
        assert (tmp_path / name).stat().st_size > 1000
