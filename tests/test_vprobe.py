"""V-probes (physlm.worlds.igsm.vprobe): labels of a hand-built iGSM problem against values derived by hand, the prompt
layout per property, the low-rank embedding update (starts at zero, trains only U, V and the head, leaves
the caller's model alone), that the shared-prefix (trunk) computation gives the full-sequence states and
gradients on generated problems, causality and padding invariance, how examples are cut into trunks and
steps, that a probe learns a token-identity label far above majority, the majority baseline against a hand
count, and the whole driver on small problems."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from physlm.model import GPT, POSITIONS, GPTConfig
from physlm.worlds.igsm.text import igsm_vocab
from physlm.worlds.igsm.labels import (
    PROPERTIES,
    UNKNOWN,
    Pick,
    VExample,
    ancestors,
    can_next,
    classes,
    dep,
    draw_picks,
    gd_params,
    known,
    label,
    nece,
    nece_next,
    probe_examples,
    problem_sentences_text,
    solution_sentences,
    value,
)
from physlm.lora import LowRankEmbedding
from physlm.worlds.igsm.vprobe import (
    PrefixBatch,
    Trunk,
    VProbe,
    VProbeConfig,
    fit_vprobe,
    full_sequence_states,
    pack,
    predict,
    run_vprobes,
    score,
    trunk_steps,
    trunks,
)
from physlm.worlds.igsm.report import plot_vprobes
from physlm.worlds.igsm.types import Param, Problem

pytestmark = pytest.mark.usefixtures("one_thread")

# A d = 3 world: Oak Park -> {Lion, Wolf}; Lion -> Rib; Wolf -> Skull (categories Animal, Bone).
NAMES = ["Oak Park", "Lion", "Wolf", "Rib", "Skull", "Animal", "Bone"]
PARAMS = (
    Param("Lion's Rib", False, (), "const", None, 4, 4),                        # 0 = 4
    Param("Oak Park's Lion", False, (0,), "copy", "mul", 2, 8),                 # 1 = 2 * p0
    Param("Wolf's Skull", False, (5,), "copy", None, None, 4),                   # 2 = p5 (abstract)
    Param("Oak Park's Wolf", False, (0, 1), "sum", None, None, 12),              # 3 = p0 + p1
    Param("Oak Park's Animal", True, (1, 3), "sum", None, None, 20),             # 4 = p1 + p3 (query)
    Param("Lion's Bone", True, (0,), "sum", None, None, 4),                      # 5 = p0
    Param("Wolf's Bone", True, (2,), "sum", None, None, 4),                      # 6 = p2
    Param("Oak Park's Bone", True, (1, 5, 3, 6), "sumprod", None, None, 11),     # 7 = p1 p5 + p3 p6
)
SENTENCES = {
    0: "The number of each Lion's Rib equals 4.",
    1: "The number of each Oak Park's Lion equals 2 times as much as each Lion's Rib.",
    2: "The number of each Wolf's Skull equals each Lion's Bone.",
    3: "The number of each Oak Park's Wolf equals the sum of each Lion's Rib and each Oak Park's Lion.",
}
QUESTION = "How many Animal does Oak Park have?"
SOLUTION = ["Define Lion's Rib as x; so x = 4.", "Define Oak Park's Lion as p; so p = 2 * x = 2 * 4 = 8.",
            "Define Oak Park's Wolf as Q; so Q = x + p = 4 + 8 = 12.",
            "Define Oak Park's Animal as B; so B = p + Q = 8 + 12 = 20."]
ORDER = (2, 0, 3, 1)
BODY = " ".join(SENTENCES[k] for k in ORDER)


def hand_problem(fmt: str = "pq") -> Problem:
    text = f"{BODY} {QUESTION}" if fmt == "pq" else f"{QUESTION} {BODY}"
    return Problem(params=PARAMS, sentences=ORDER, query=4, necessary=frozenset({0, 1, 3, 4}), order=(0, 1, 3, 4),
                   fmt=fmt, problem=text, question=QUESTION, solution=" ".join(SOLUTION), answer=20, op=4,
                   categorization=0, layers=(0, 1, 2), bucket=0)


VOCAB = igsm_vocab(NAMES)


def tiny_gpt(seed: int = 0, context: int = 160, depth: int = 1, width: int = 32) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=VOCAB.size, context=context, depth=depth, width=width, heads=2))


# ---------------------------------------------------------------------------------------------- labels


def test_graph_labels_by_hand() -> None:
    p = hand_problem()
    closure = ancestors(p)
    assert closure == (frozenset(), frozenset({0}), frozenset({5, 0}), frozenset({0, 1}),
                       frozenset({0, 1, 3}), frozenset({0}), frozenset({0, 2, 5}), frozenset({0, 1, 2, 3, 5, 6}))
    # instances 0..3, the necessary abstract 4, and 5 (Wolf's Skull depends on it); 6 and 7 are not in G_d
    assert gd_params(p) == (0, 1, 2, 3, 4, 5)
    assert [nece(p, a) for a in range(8)] == [1, 1, 0, 1, 1, 0, 0, 0]
    assert label(p, closure, "dep", Pick(0, 2, 0)) == 1  # through the abstract Lion's Bone
    assert label(p, closure, "dep", Pick(0, 0, 2)) == 0
    assert label(p, closure, "dep", Pick(0, 4, 2)) == 0
    assert label(p, closure, "dep", Pick(0, 4, 0)) == 1


def test_solution_labels_by_hand() -> None:
    p = hand_problem()
    gd = range(6)
    table = {  # i -> (known, can_next, nece_next) over parameters 0..5
        0: ([0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0]),
        1: ([1, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 1], [0, 1, 0, 0, 0, 0]),
        2: ([1, 1, 0, 0, 0, 0], [0, 0, 0, 1, 0, 1], [0, 0, 0, 1, 0, 0]),
        3: ([1, 1, 0, 1, 0, 0], [0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 1, 0]),
        4: ([1, 1, 0, 1, 1, 0], [0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0]),
    }
    for i, (kn, cn, nn) in table.items():
        assert [known(p, i, a) for a in gd] == kn
        assert [can_next(p, i, a) for a in gd] == cn
        assert [nece_next(p, i, a) for a in gd] == nn
    assert [value(p, 2, a) for a in gd] == [4, 8, UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN]
    assert [value(p, 4, a) for a in gd] == [4, 8, UNKNOWN, 12, 20, UNKNOWN]


def test_picks_are_distinct_uniform_and_seeded() -> None:
    p, gd = hand_problem(), gd_params(hand_problem())
    every = draw_picks(p, "dep", gd, np.random.default_rng(0), 1000)
    assert len(every) == 30 and len(set(every)) == 30 and all(k.a != k.b for k in every)
    assert {(k.a, k.b) for k in every} == {(a, b) for a in gd for b in gd if a != b}
    solution = draw_picks(p, "known", gd, np.random.default_rng(0), 1000)
    assert {(k.position, k.a) for k in solution} == {(i, a) for i in range(5) for a in gd}
    assert len(draw_picks(p, "nece", gd, np.random.default_rng(0), 4)) == 4
    twice = [draw_picks(p, "value", gd, np.random.default_rng(3), 10) for _ in range(2)]
    assert twice[0] == twice[1]


def _trunk(size: int, length: int, query: int = 3) -> Trunk:
    return Trunk(tuple(range(length)), tuple(range(size)), query)


def test_pack_ends_each_step_nearest_the_target_and_within_the_context() -> None:
    parts = [_trunk(n, 10) for n in (10, 3, 3, 3, 20, 2)]
    # 10 + 3 = 13 is nearer 12 than 10 is, 13 + 3 is not; 3 + 3 = 6 is nearer than 3, 6 + 20 is not
    assert pack(range(6), parts, 12, 100) == [[0, 1], [2, 3], [4], [5]]
    long = [_trunk(2, 50, 5), _trunk(2, 40, 9), _trunk(2, 30, 5)]  # 50 + 9 > 58: the second opens a step
    assert pack(range(3), long, 12, 58) == [[0], [1, 2]]
    assert pack(range(3), long, 12, 59) == [[0, 1, 2]]


def test_trunk_steps_walk_epochs_of_whole_trunks_by_length() -> None:
    rng = np.random.default_rng(0)
    parts = [_trunk(3, int(n)) for n in rng.integers(20, 200, size=19)]
    # steps of 3 trunks (9 examples: 6 + 3 / 2 <= 8 < 9 + 3 / 2); the epoch's 7th step (1 trunk, 3 < 8 / 2) is dropped
    steps = trunk_steps(parts, 8, 18, 1000, np.random.default_rng(1))
    assert len(steps) == 18 and all(len(s) == 3 for s in steps)
    for epoch in range(3):
        seen = [k for s in steps[6 * epoch : 6 * epoch + 6] for k in s]
        assert len(set(seen)) == 18
    heads = np.array([len(t.tokens) for t in parts])
    spread = np.mean([np.ptp(heads[s]) for s in steps])
    assert spread < 0.5 * np.mean([np.ptp(heads[rng.choice(19, 3, replace=False)]) for _ in range(200)])
    assert steps == trunk_steps(parts, 8, 18, 1000, np.random.default_rng(1))
    few = trunk_steps(parts[:2], 8, 3, 1000, rng)  # 6 examples in all: every step takes them all
    assert len(few) == 3 and all(sorted(s) == [0, 1] for s in few)


# ---------------------------------------------------------------------------------------------- prompts


@pytest.mark.parametrize("fmt", ["pq", "qp"])
def test_prompt_layout_and_labels_of_examples(fmt: str) -> None:
    """Every example of every property decodes to the SPEC layout at a sentence boundary, and its label
    is the hand label of the parameter(s) it names."""
    p = hand_problem(fmt)
    index = {q.name: k for k, q in enumerate(PARAMS)}
    problem_end = {"nece": p.problem, "dep": BODY if fmt == "pq" else p.problem}
    for prop in PROPERTIES:
        examples = probe_examples([p], VOCAB, prop, picks=10, seed=1, max_tokens=1000)
        assert len(examples) == (6 if prop == "nece" else 10)  # nece: one position x 6 parameters
        for e in examples:
            text = VOCAB.decode(e.tokens)
            prefix = problem_end.get(prop) or " ".join([p.problem, "[SOL]", *SOLUTION[: e.position]])
            assert VOCAB.decode(e.tokens[: e.prefix]) == f"<bos> [PROB] {prefix}"
            assert e.tokens == (VOCAB.bos_id, *VOCAB.encode(text.removeprefix("<bos> ")))
            if prop == "dep":
                m = re.fullmatch(re.escape(f"<bos> [PROB] {prefix} [START] ") + r"(.+) \[MID\] (.+) \[END\]", text)
                a, b = index[m[1]], index[m[2]]
                assert e.label == int(b in ancestors(p)[a]) and a != b
            else:
                m = re.fullmatch(re.escape(f"<bos> [PROB] {prefix} [START] ") + r"(.+) \[END\]", text)
                assert m, text
                assert e.label == label(p, ancestors(p), prop, Pick(e.position, index[m[1]]))
            assert e.position == 0 or prop in ("known", "value", "can_next", "nece_next")


def test_long_examples_are_skipped() -> None:
    p = hand_problem()
    full = probe_examples([p], VOCAB, "known", picks=10, seed=0, max_tokens=1000)  # prefixes of different lengths
    limit = min(len(e.tokens) for e in full)
    kept = probe_examples([p], VOCAB, "known", picks=10, seed=0, max_tokens=limit)
    assert 0 < len(kept) < len(full) and all(len(e.tokens) <= limit for e in kept)


# ---------------------------------------------------------------------------------------------- the probe


WORDS = ("Lion", "Wolf", "Rib", "Skull", "Oak Park", "Bone", "Animal", "4", "7", "the")


def _examples(n: int, seed: int) -> list[VExample]:
    """Random word sequences, one example each; label = whether the token `Lion` appears in them (about 40%
    do)."""
    rng = np.random.default_rng(seed)
    words = [VOCAB.id(w) for w in WORDS]
    out = []
    for problem in range(n):
        w = [words[k] for k in rng.integers(0, len(words), size=int(rng.integers(3, 9)))]
        tokens = (VOCAB.bos_id, VOCAB.id("[PROB]"), *w, VOCAB.id("[START]"), words[int(rng.integers(1, 10))],
                  VOCAB.id("[END]"))
        out.append(VExample(tokens, int(words[0] in w), problem, 0, len(w) + 2))
    return out


def _shared_examples(n: int, seed: int) -> list[VExample]:
    """n random word sequences, each read at 1-4 cut points (its examples share prefixes) with a query
    `[START] x [END]` or `[START] x [MID] y [END]`; label = whether `Lion` is in the prefix."""
    rng = np.random.default_rng(seed)
    words = [VOCAB.id(w) for w in WORDS]
    start, mid, end = (VOCAB.id(m) for m in ("[START]", "[MID]", "[END]"))
    out = []
    for problem in range(n):
        w = [words[k] for k in rng.integers(0, len(words), size=int(rng.integers(3, 13)))]
        for _ in range(int(rng.integers(1, 5))):
            cut = int(rng.integers(1, len(w) + 1))
            head = (VOCAB.bos_id, VOCAB.id("[PROB]"), *w[:cut])
            x = [words[k] for k in rng.integers(1, 10, size=2)]
            query = (start, x[0], end) if rng.random() < 0.5 else (start, x[0], mid, x[1], end)
            out.append(VExample((*head, *query), int(words[0] in w[:cut]), problem, cut, len(head)))
    return out


def test_update_starts_at_zero_and_trains_only_the_update_and_head() -> None:
    model = tiny_gpt()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    requires = {k: p.requires_grad for k, p in model.named_parameters()}
    probe = VProbe(model, 2, rank=4, seed=0)
    wte = probe.model.wte
    assert isinstance(wte, LowRankEmbedding) and torch.equal(wte.delta(), torch.zeros_like(wte.delta()))
    idx = torch.randint(0, VOCAB.size, (3, 7))
    assert torch.equal(wte(idx), model.wte(idx))
    assert torch.allclose(probe.model.hidden_states(idx), model.hidden_states(idx))
    trainable = {k for k, p in probe.named_parameters() if p.requires_grad}
    assert trainable == {"model.wte.a", "model.wte.b", "head.weight", "head.bias"}

    examples = _shared_examples(24, 0)
    fit = fit_vprobe(model, examples, 2, rank=4, steps=5, batch_size=8, lr=2e-3, weight_decay=0.01, seed=0)
    wte = fit.probe.model.wte
    assert torch.equal(wte.base.weight, before["wte.weight"])
    assert wte.delta().abs().max() > 0
    assert torch.allclose(wte(idx), model.wte(idx) + wte.delta()[idx], atol=1e-6)
    frozen = {k.removeprefix("model."): v for k, v in fit.probe.state_dict().items() if not k.startswith("head.")}
    for k, v in before.items():  # the caller's model and the probe's frozen copy keep every base weight
        assert torch.equal(model.state_dict()[k], v), k
        assert torch.equal(frozen[k.replace("wte.", "wte.base.")], v), k
    assert {k: p.requires_grad for k, p in model.named_parameters()} == requires
    assert not fit.probe.model.training
    encoder = GPT(GPTConfig(vocab_size=VOCAB.size, context=16, depth=1, width=32, heads=2, causal=False))
    with pytest.raises(ValueError, match="causal"):
        VProbe(encoder, 2, rank=4, seed=0)


def _batch(examples: list[VExample]) -> PrefixBatch:
    return PrefixBatch.of(examples, trunks(examples, 160, len(examples)), "cpu")


def test_grouped_logits_are_causal_and_padding_free() -> None:
    model = tiny_gpt(depth=2)
    fit = fit_vprobe(model, _shared_examples(24, 0), 2, rank=4, steps=5, batch_size=8, lr=2e-2, weight_decay=0.01,
                     seed=0)
    probe, examples = fit.probe, _shared_examples(5, 1)
    batch = _batch(examples)
    whole = batch.prefix == (batch.trunks.size(1) - batch.pad)[batch.trunk]  # the example's prefix is its whole trunk
    assert len(batch.pad) < len(examples) and (~whole).any()
    trunk_pads = torch.arange(batch.trunks.size(1))[None, :] < batch.pad[:, None]
    query_pads = torch.arange(batch.queries.size(1))[None, :] >= batch.lengths[:, None]
    assert trunk_pads.any() and query_pads.any()
    with torch.no_grad():
        logits = probe(batch)
        alone = torch.cat([probe(_batch([examples[r]])) for r in batch.rows])
        assert torch.allclose(logits, alone, atol=1e-5)
        trunks_noise, queries_noise = batch.trunks.clone(), batch.queries.clone()
        trunks_noise[trunk_pads] = torch.randint(2, VOCAB.size, (int(trunk_pads.sum()),))
        queries_noise[query_pads] = torch.randint(2, VOCAB.size, (int(query_pads.sum()),))
        noisy = dataclasses.replace(batch, trunks=trunks_noise, queries=queries_noise)
        assert torch.allclose(probe(noisy), logits, atol=1e-5)
        last = batch.trunks.clone()  # a trunk's last token: only the examples that read the whole trunk see it
        last[:, -1] = VOCAB.id("[SOL]")
        moved = (probe(dataclasses.replace(batch, trunks=last)) - logits).abs().amax(-1)
        assert (moved[whole] > 1e-4).all() and (moved[~whole] < 1e-5).all()


@pytest.mark.parametrize("canon", ["", "ABCD"])
@pytest.mark.parametrize("pos", sorted(POSITIONS))
def test_grouped_states_match_the_full_sequences_in_every_position_scheme(pos: str, canon: str) -> None:
    """Canon layers: each query row starts from its trunk's recorded inputs just before its prefix ends."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=VOCAB.size, context=64, depth=2, width=32, heads=2, pos=pos, canon=canon))
    probe, examples = VProbe(model, 2, rank=4, seed=0), _shared_examples(6, 1)
    batch = _batch(examples)
    with torch.no_grad():
        probe.model.wte.a.normal_(0.0, 0.5)
        for block in probe.model.blocks if pos == "pos" else ():
            block.attn.offset_logits.normal_()  # zeros at init: a uniform average
        grouped = probe.states(batch)
        full = full_sequence_states(probe, [examples[r] for r in batch.rows])
    assert (grouped - grouped[0]).abs().amax() > 1e-3  # the rows differ
    torch.testing.assert_close(grouped, full, atol=1e-5, rtol=0)


def test_probe_learns_a_token_identity_label() -> None:
    train, test = _examples(2000, 0), _examples(400, 1)
    fit = fit_vprobe(tiny_gpt(), train, 2, rank=8, steps=400, batch_size=32, lr=2e-3, weight_decay=0.01, seed=0)
    truth = np.array([e.label for e in test])
    row = score(predict(fit.probe, test, 64), truth, np.array([e.label for e in train]), 2)
    assert row["accuracy"] > row["majority"] + 0.25
    assert row["accuracy_pos"] > 0.7 and row["accuracy_neg"] > 0.7


def test_score_by_hand() -> None:
    train = np.array([1, 1, 0, 1, 0])  # majority class 1
    truth = np.array([0, 0, 1, 0, 1, 1])
    pred = np.array([0, 1, 1, 0, 0, 1])
    row = score(pred, truth, train, 2)
    assert row["majority_class"] == 1 and row["majority"] == pytest.approx(3 / 6)
    assert row["accuracy"] == pytest.approx(4 / 6)
    assert row["accuracy_pos"] == pytest.approx(2 / 3) and row["accuracy_neg"] == pytest.approx(2 / 3)
    row24 = score(np.array([23, 5]), np.array([23, 23]), np.array([5, 5, 23]), 24)
    assert row24["majority"] == 0.0 and row24["accuracy"] == 0.5 and "accuracy_pos" not in row24


# ---------------------------------------------------------------------------------------------- driver


def test_run_vprobes_and_plot(tmp_path) -> None:
    problems = [hand_problem("pq"), hand_problem("qp")] * 3
    models = {"trained": tiny_gpt(0), "control": tiny_gpt(1)}
    before = {k: v.clone() for k, v in models["trained"].state_dict().items()}
    cfg = VProbeConfig(steps=2, batch_size=8, picks=4)
    rows, summary = run_vprobes(models, problems[:4], problems[4:], VOCAB, cfg, seed=0)
    assert [(r["model"], r["property"]) for r in rows] == [(m, p) for p in PROPERTIES for m in models]
    assert all(r["n_test"] == 8 and r["n_train"] == 16 for r in rows)
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in rows)
    assert summary["dep_trained"] == rows[2]["accuracy"] and "value_majority" in summary
    for k, v in before.items():
        assert torch.equal(models["trained"].state_dict()[k], v)
    again, _ = run_vprobes(models, problems[:4], problems[4:], VOCAB, cfg, seed=0)
    assert json.dumps(again) == json.dumps(rows)  # NaN-aware equality
    # fitted side by side in 2 spawned processes (1 thread each, like this test): the very same rows, in order
    two, _ = run_vprobes(models, problems[:4], problems[4:], VOCAB, dataclasses.replace(cfg, workers=2), seed=0)
    assert json.dumps(two) == json.dumps(rows)
    plot_vprobes(rows, tmp_path / "vprobe.png")
    assert (tmp_path / "vprobe.png").stat().st_size > 0
    with pytest.raises(ValueError, match="properties"):
        VProbeConfig(properties=("nece", "depth"))
    with pytest.raises(ValueError, match="workers"):
        VProbeConfig(workers=0)


# ---------------------------------------------------------------------------------------------- real problems


def _world_vocab(units: str = "names"):
    from physlm.worlds.igsm.knowledge import load_knowledge

    world = load_knowledge()
    return igsm_vocab((n for c in world.categorizations for layer in c.layers
                       for n in (layer.category, *(i for _, items in layer.subcategories for i in items))), units)


def _real_problems(n: int, split: str) -> list[Problem]:
    from physlm.worlds.igsm.graph import IgsmSpec
    from physlm.worlds.igsm.problems import generate_problem

    return [generate_problem(IgsmSpec(max_op=4, max_edge=12, fmt=("pq", "qp")[i % 2]), 0, i, split=split) for i in range(n)]


def _sentence_of(problem: Problem, name: str) -> str:
    (sentence,) = [s for s in re.split(r"(?<=[.?]) ", problem.problem) if s.startswith(f"The number of each {name} equals")]
    return sentence


def test_labels_of_generated_problems_agree_with_their_text() -> None:
    """Oracles read off the problem and solution text, not the generator's bookkeeping: direct dependencies
    are the parameters a sentence names; defined names and values come from the solution sentences."""
    for p in _real_problems(40, "train"):
        closure, gd, names = ancestors(p), gd_params(p), [q.name for q in p.params]
        for a in gd:
            assert not dep(closure, a, a)
            if not p.params[a].abstract:
                sentence = _sentence_of(p, names[a])
                for b in p.params[a].deps:  # every direct dependency is named in A's sentence, and in G_d
                    assert re.search(re.escape(f"each {names[b]}") + r"(?=[.,]| and )", sentence), (names[b], sentence)
                    assert dep(closure, a, b) and b in gd
            for b in gd:
                for c in gd:
                    assert not (dep(closure, a, b) and dep(closure, b, c)) or dep(closure, a, c)
        defined = [re.fullmatch(r"Define (.+) as \w; .*= (\d+)\.", s).groups() for s in solution_sentences(p)]
        assert {names.index(d) for d, _ in defined} == {a for a in gd if nece(p, a)}
        for i in range(len(defined) + 1):
            done = {names.index(d): int(v) for d, v in defined[:i]}
            assert [known(p, i, a) for a in gd] == [int(a in done) for a in gd]
            assert [value(p, i, a) for a in gd] == [done.get(a, UNKNOWN) for a in gd]
            if i < len(defined):  # the solution's next parameter can be computed next, and is necessary
                assert can_next(p, i, names.index(defined[i][0])) and nece_next(p, i, names.index(defined[i][0]))
            else:
                assert not any(nece_next(p, i, a) for a in gd)


DEMO = {"max_op": 4, "max_edge": 8, "max_layers": 3, "max_items": 3}  # the igsm_demo dataset's problems


def _demo_examples(vocab, prop: str, n: int) -> list[VExample]:
    from physlm.worlds.igsm.graph import IgsmSpec
    from physlm.worlds.igsm.problems import generate_problem

    problems = [generate_problem(IgsmSpec(**DEMO, fmt=("pq", "qp")[i % 2]), 0, i) for i in range(n)]
    return probe_examples(problems, vocab, prop, picks=10, seed=0, max_tokens=256)


def _probe_with_update(vocab, num_classes: int) -> VProbe:
    """A probe of a random 2-block model with a nonzero update and head (so every gradient is nonzero)."""
    torch.manual_seed(0)
    probe = VProbe(GPT(GPTConfig(vocab_size=vocab.size, context=256, depth=2, width=32, heads=2)), num_classes, 8, 0)
    with torch.no_grad():
        probe.model.wte.a.normal_(0.0, 0.5)
        probe.head.weight.normal_()
    return probe


def test_trunks_share_each_problems_prefixes() -> None:
    vocab = _world_vocab()
    for prop in ("nece", "dep", "known"):
        examples = _demo_examples(vocab, prop, 6)
        parts = trunks(examples, 256, 100)
        assert sorted(r for t in parts for r in t.rows) == list(range(len(examples)))
        assert len(parts) == 6  # one per problem: every prefix of a problem begins its longest one
        for t in parts:
            mine = [examples[r] for r in t.rows]
            assert len({e.problem for e in mine}) == 1 and len(t.tokens) == max(e.prefix for e in mine)
            assert all(e.tokens[: e.prefix] == t.tokens[: e.prefix] for e in mine)
            assert t.query == max(len(e.tokens) - e.prefix for e in mine)
        tight = max(len(e.tokens) for e in examples)  # the longest trunk may leave no room for a longer query
        cut = trunks(examples, tight, 3)
        assert sorted(r for t in cut for r in t.rows) == list(range(len(examples))) and len(cut) > len(parts)
        assert all(len(t.rows) <= 3 and len(t.tokens) + t.query <= tight for t in cut)
    apart = [VExample((0, 5, 6, 7), 0, 0, 0, 3), VExample((0, 6, 7), 0, 0, 0, 2), VExample((0, 5, 8), 0, 0, 0, 2)]
    assert [(t.tokens, t.rows) for t in trunks(apart, 10, 10)] == [((0, 5, 6), (0, 2)), ((0, 6), (1,))]


@pytest.mark.parametrize("prop", ["known", "dep"])
def test_grouped_states_match_the_full_sequences(prop: str) -> None:
    """known: a trunk's examples read it to different depths; dep: one prefix per problem, two-name queries.
    Names of several words give queries of different lengths; trunks of different lengths are left-padded."""
    vocab = _world_vocab("words")
    examples = _demo_examples(vocab, prop, 4)
    batch = PrefixBatch.of(examples, trunks(examples, 256, 100), "cpu")
    by_trunk = [[examples[r] for r, g in zip(batch.rows, batch.trunk.tolist()) if g == k] for k in range(4)]
    depths = max(len({e.prefix for e in mine}) for mine in by_trunk)
    assert depths > 1 if prop == "known" else depths == 1
    queries: dict[tuple[int, int], set[int]] = {}  # (problem, prefix) -> query lengths
    for e in examples:
        queries.setdefault((e.problem, e.prefix), set()).add(len(e.tokens) - e.prefix)
    assert max(map(len, queries.values())) > 1 and (batch.pad > 0).any()
    probe = _probe_with_update(vocab, classes(prop))
    with torch.no_grad():
        grouped = probe.states(batch)
        full = full_sequence_states(probe, [examples[r] for r in batch.rows])
    torch.testing.assert_close(grouped, full, atol=1e-5, rtol=0)


def test_grouped_gradients_match_the_full_sequences() -> None:
    vocab = _world_vocab()
    examples = _demo_examples(vocab, "known", 8)
    parts = trunks(examples, 256, 16)
    (step,) = trunk_steps(parts, 16, 1, 256, np.random.default_rng(0))
    batch = PrefixBatch.of(examples, [parts[k] for k in step], "cpu")
    assert len(step) > 1
    probe = _probe_with_update(vocab, 2)
    labels = torch.tensor([examples[r].label for r in batch.rows])
    params = [probe.model.wte.a, probe.model.wte.b, probe.head.weight, probe.head.bias]
    grads = []
    for states in (lambda: probe.states(batch), lambda: full_sequence_states(probe, [examples[r] for r in batch.rows])):
        grads.append(torch.autograd.grad(F.cross_entropy(probe.head(states()), labels), params))
    for grouped, full in zip(*grads):
        torch.testing.assert_close(grouped, full, atol=1e-5, rtol=1e-4)
    assert grads[0][0][vocab.id("equals")].abs().sum() > 0  # a word of the prefixes only: through the cache


def test_run_vprobes_on_generated_problems() -> None:
    vocab = _world_vocab()
    train, test = _real_problems(12, "train"), _real_problems(6, "test")
    for p in test:
        body = problem_sentences_text(p)
        assert body.endswith(".") and (p.fmt == "qp" or body + " " + p.question == p.problem)
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=vocab.size, context=512, depth=1, width=32, heads=2)
    models = {name: GPT(cfg) for name in ("trained", "control")}
    rows, summary = run_vprobes(models, train, test, vocab, VProbeConfig(steps=2, batch_size=8, picks=3), seed=0)
    assert len(rows) == 12 and all(r["n_test"] > 0 and r["n_train"] > 0 for r in rows)
    assert all(f"{prop}_majority" in summary for prop in PROPERTIES)
