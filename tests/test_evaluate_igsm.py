"""The teacher-forced step checks of physlm/worlds/igsm/evaluate.py: how a gold solution is cut into scored parts
(against counts derived from the problems' parameters, not from the cutting), which next parameters count
as valid (a hand-built graph), and the scoring itself with models whose answers are known in advance."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import physlm.worlds.igsm.evaluate as E
from physlm.errors import DataError
from physlm.worlds.igsm.labels import CHOICES, PARTS, forced_problem, next_choice, solution_pieces
from physlm.worlds.igsm.evaluate import teacher_forced
from physlm.worlds.igsm.tokenize import vocabulary
from physlm.worlds.igsm.graph import MED, IgsmSpec
from physlm.worlds.igsm.problems import generate_problem
from physlm.worlds.igsm.knowledge import load_knowledge
from physlm.worlds.igsm.types import Param, Problem

WORLD = load_knowledge()
VOCAB = vocabulary()


def test_pieces_of_a_hand_written_solution() -> None:
    solution = ("Define Lion's Rib as x; so x = 4. Define Oak Park's Wolf as Q; t = x + p = 4 + 8 = 12; "
                "so Q = 2 * t = 2 * 12 = 1. Define Wolf's Skull as W; so W = Q = 1.")
    assert solution_pieces(solution) == [
        ("", "Define Lion's Rib as x;"), ("", "so x ="), ("lookup", "4"), ("", "."),
        ("", "Define Oak Park's Wolf as Q;"), ("", "t ="), ("operands", "x + p"), ("", "="), ("values", "4 + 8"), ("", "="),
        ("arithmetic", "12"), ("", ";"), ("", "so Q ="), ("operands", "2 * t"), ("", "="), ("values", "2 * 12"), ("", "="),
        ("arithmetic", "1"), ("", "."),
        ("", "Define Wolf's Skull as W;"), ("", "so W ="), ("operands", "Q"), ("", "="), ("values", "1"), ("", "."),
    ]


@pytest.mark.parametrize("bad", ["Define A as x; so x = 4", "Let A be x; so x = 4.", "Define A as x; so x = 1 = 2 = 3 = 4 = 5."])
def test_pieces_reject_other_formats(bad: str) -> None:
    with pytest.raises(DataError):
        solution_pieces(bad)


@pytest.mark.parametrize("spec", [MED, IgsmSpec(max_op=4, max_edge=6, max_layers=3, max_items=2, names=4)])
def test_parts_match_counts_from_the_parameters(spec: IgsmSpec) -> None:
    for i in range(150):
        p = generate_problem(spec, 5, i, knowledge=WORLD)
        pieces = solution_pieces(p.solution)
        assert re.sub(r" ([.;])", r"\1", " ".join(t for _, t in pieces)) == p.solution  # the pieces cover it
        kinds = [k for k, _ in pieces if k]
        preds = {a: len(p.params[a].deps) + p.params[a].has_rng for a in p.order}  # predecessors, the RNG counted
        constants = sum(not p.params[a].deps for a in p.order)                         # `so v = c`
        assert kinds.count("lookup") == constants
        assert kinds.count("operands") == kinds.count("values") == p.op - constants  # every other step
        assert kinds.count("arithmetic") == sum(t - 1 for t in preds.values() if t >= 2)  # binary operations
        fp = forced_problem(p, VOCAB)  # also checks the pieces tokenize like the whole solution
        assert len(fp.sentence_starts) == len(p.order)
        assert all(fp.ids[s] == VOCAB.id("Define") for s in fp.sentence_starts)
        assert [k for k, _, _ in fp.parts] == kinds


# A d = 3 world: Oak Park -> {Lion, Wolf}; Lion -> Rib; Wolf -> Skull (categories Animal, Bone).
PARAMS = (
    Param("Lion's Rib", False, (), "const", None, 4, 4),                        # 0
    Param("Oak Park's Lion", False, (0,), "copy", "mul", 2, 8),                 # 1
    Param("Wolf's Skull", False, (5,), "copy", None, None, 4),                   # 2
    Param("Oak Park's Wolf", False, (0, 1), "sum", None, None, 12),              # 3
    Param("Oak Park's Animal", True, (1, 3), "sum", None, None, 20),             # 4 (query)
    Param("Lion's Bone", True, (0,), "sum", None, None, 4),                      # 5
)
HAND = Problem(params=PARAMS, sentences=(2, 0, 3, 1), query=4, necessary=frozenset({0, 1, 3, 4}), order=(0, 1, 3, 4),
               fmt="pq", problem="", question="", solution="", answer=20, op=4, categorization=0, layers=(0, 1, 2), bucket=0)


@pytest.mark.parametrize("done,name,choice", [
    (set(), "Lion's Rib", "valid"),
    (set(), "Oak Park's Lion", "not_ready"),
    ({0}, "Oak Park's Lion", "valid"),
    ({0}, "Lion's Bone", "unnecessary"),        # ready, but the question does not need it
    ({0}, "Wolf's Skull", "not_ready"),         # its predecessor Lion's Bone is never defined
    ({0, 1}, "Lion's Rib", "redefined"),
    ({0, 1}, "Oak Park's Animal", "not_ready"),
    ({0, 1, 3}, "Oak Park's Animal", "valid"),
    ({0}, "Lion's Tail", "unknown"),
    ({0}, None, "unknown"),
])
def test_next_choice(done: set[int], name: str | None, choice: str) -> None:
    assert next_choice(HAND, done, name) == choice


class Peek(nn.Module):
    """A 'model' that reads the next token off its input: perfect teacher-forced argmax (shift=1), or one
    that repeats the current token (shift=0)."""

    def __init__(self, vocab_size: int, shift: int) -> None:
        super().__init__()
        self.cfg = SimpleNamespace(context=512)
        self.shift, self.vocab_size = shift, vocab_size
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, idx: torch.Tensor):
        return nn.functional.one_hot(torch.roll(idx, -self.shift, dims=1), self.vocab_size).float(), None


def _fake_generate(problems: list[Problem], pick):
    """A stand-in for `generate` that writes `pick(problem, k)` + ` as` after a prompt ending in the k-th
    `Define` of a problem's gold solution (the problem found by its text in the prompt)."""
    define = VOCAB.id("Define")

    def fake(model, prompts, **kwargs):
        out = []
        for prompt in prompts:
            text = VOCAB.decode(prompt)
            problem = next(p for p in problems if p.problem in text)
            out.append(VOCAB.encode(f"{pick(problem, prompt.count(define) - 1)} as"))
        return out

    return fake


def test_teacher_forced_scores_known_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    problems = [generate_problem(MED, 9, i, knowledge=WORLD) for i in range(12)]
    steps = sum(len(p.order) for p in problems)
    gold = _fake_generate(problems, lambda p, k: p.params[p.order[k]].name)
    monkeypatch.setattr(E, "generate", gold)
    perfect = teacher_forced(Peek(VOCAB.size, 1), problems, VOCAB, batch_size=5)
    assert perfect["problems"] == 12 and perfect["steps"] == steps
    assert perfect["next_param"] == {c: float(c == "valid") for c in CHOICES}
    assert all(perfect["parts"][k]["accuracy"] == 1.0 for k in PARTS if perfect["parts"][k]["n"])
    assert perfect["parts"]["lookup"]["n"] == sum(not p.params[a].deps for p in problems for a in p.order)
    assert 0 < perfect["valid_chance"] < 1
    # The query is ready only once everything else necessary is defined (each other necessary parameter is
    # an ancestor of one of its predecessors), so naming it at every step is valid exactly once per problem.
    monkeypatch.setattr(E, "generate", _fake_generate(problems, lambda p, k: p.params[p.query].name))
    query = teacher_forced(Peek(VOCAB.size, 0), problems, VOCAB, batch_size=5)
    assert query["next_param"]["valid"] == pytest.approx(12 / steps)
    assert query["next_param"]["not_ready"] == pytest.approx(1 - 12 / steps)
    assert all(c["accuracy"] < 0.5 for c in query["parts"].values() if c["n"])  # repeating a token is rarely right
    assert sum(query["valid_by_op"][str(op)]["n"] for op in {p.op for p in problems}) == steps


def test_teacher_forced_skips_problems_that_do_not_fit() -> None:
    problems = [generate_problem(MED, 9, i, knowledge=WORLD) for i in range(6)]
    model = Peek(VOCAB.size, 1)
    model.cfg.context = min(len(forced_problem(p, VOCAB).ids) for p in problems) - 1
    found = teacher_forced(model, problems, VOCAB, batch_size=4)
    assert found["problems"] == found["steps"] == 0 and found["valid_chance"] is None
    assert all(c["n"] == 0 and c["accuracy"] is None for c in found["parts"].values())
