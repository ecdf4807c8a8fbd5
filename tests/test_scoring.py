"""Scoring against known answers: the headline accuracies of the iGSM and grammar worlds, fed generations whose
verdicts are known by construction, and sampled from scripted models that write known token sequences.

iGSM (physlm/worlds/igsm/evaluate.py): `score` and `summarize` on real generated problems, each generation
built from the problem's gold solution (as is, with an unnecessary parameter added, with one step's result
off by one, truncated, with a wrong, unreadable or missing answer, the answer alone, garbage, nothing), so
every verdict, answer check and summary number is known in advance; then `solve` -> `score` -> `summarize`
end to end with a scripted model, greedy and by beam search.

Grammar world (physlm/worlds/cfg/generation.py, evaluate.py): cut0 and cut50 sampling through
`physlm.sampling.generate` at temperature 1 from a scripted model that writes grammar samples, strings shorter
than the grammar's shortest sentence (recomputed here from the rules), strings with a special token inside and
runs that never end; accuracy, n, mean_length, distinct and seen_in_train are counted by hand, for the
generation functions and for the whole evaluate step.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from types import SimpleNamespace

import polars as pl
import pytest
import torch
from torch import Tensor, nn

import physlm.worlds.cfg.evaluate as cfg_evaluate
from physlm.tokenize import Vocab
from physlm.worlds.cfg.generation import sample_cut0, sample_prefix, score_samples
from physlm.worlds.cfg.grammar import Grammar, Judge, format_grammar, load_grammar, sample_sentences
from physlm.worlds.cfg.report import markdown
from physlm.worlds.igsm.evaluate import accuracy_rows, by_op_range, score, solve, summarize
from physlm.worlds.igsm.graph import LETTERS, IgsmSpec
from physlm.worlds.igsm.problems import generate_problem
from physlm.worlds.igsm.render import render_solution
from physlm.worlds.igsm.text import igsm_prompt
from physlm.worlds.igsm.tokenize import vocabulary
from physlm.worlds.igsm.types import MOD, Problem

pytestmark = pytest.mark.usefixtures("one_thread")  # beam search's small kernels crawl when two threads contend

# ------------------------------------------------------------------------------------- scripted model


class Tape:
    """The scripted model's cache: per row, its script and how many tokens of it were written."""

    def __init__(self) -> None:
        self.rows: list[tuple[list[int], int]] = []

    def select(self, rows: Tensor) -> None:
        """Keep (and duplicate) rows, as beam search does with the surviving beams."""
        self.rows = [self.rows[i] for i in rows.tolist()]


class Scripted(nn.Module):
    """A stand-in GPT that writes known tokens: after the `row`-th prompt it is started on (counted in the order
    the sampler starts its rows), `script(row, prompt)`, then `filler` for ever. The scripted token's logit
    leads by 100, more than sampling noise can make up (a Gumbel draw from a float32 uniform is below 17), so
    greedy decoding, sampling and beam search all write the script."""

    def __init__(self, vocab_size: int, context: int, script: Callable[[int, tuple[int, ...]], Sequence[int]],
                 filler: int) -> None:
        super().__init__()
        self.cfg = SimpleNamespace(context=context)
        self.anchor = nn.Parameter(torch.zeros(1))  # the sampler reads the device off the parameters
        self.vocab_size, self.script, self.filler, self.started = vocab_size, script, filler, 0

    def new_cache(self, batch: int, length: int) -> Tape:
        return Tape()

    def forward(self, idx: Tensor, *, cache: Tape, pad: Tensor | None = None) -> tuple[Tensor, None]:
        if not cache.rows:  # the prompts, left padding removed
            for r, ids in enumerate(idx.tolist()):
                cache.rows.append((list(self.script(self.started, tuple(ids[0 if pad is None else int(pad[r]):]))), 0))
                self.started += 1
        else:  # one more token written per row
            cache.rows = [(script, k + 1) for script, k in cache.rows]
        logits = torch.zeros(idx.size(0), idx.size(1), self.vocab_size)
        for r, (script, k) in enumerate(cache.rows):
            logits[r, -1, script[k] if k < len(script) else self.filler] = 100.0
        return logits, None


# ------------------------------------------------------------------------------------------------ iGSM

VOCAB = vocabulary()
SPEC = IgsmSpec(max_op=4, max_edge=6, max_layers=3, max_items=2, names=4)


@functools.cache
def problems() -> tuple[Problem, Problem, Problem, Problem]:
    """Four real problems of op 1..4; the op-3 one has a binary step and a ready unnecessary parameter."""
    found = tuple(generate_problem(SPEC, 5, index, force_op=op) for op, index in ((1, 0), (2, 0), (3, 1), (4, 0)))
    assert [p.op for p in found] == [1, 2, 3, 4]
    return found  # type: ignore[return-value]


def gold(p: Problem) -> str:
    return f"{p.solution} [ANS] {p.answer}"


def unnecessary(p: Problem) -> int:
    """The first parameter outside the necessary set whose predecessors are all necessary (computable)."""
    return next(x for x in range(len(p.params)) if x not in p.necessary and p.ready(x, p.necessary))


def with_unnecessary(p: Problem) -> str:
    """A correct generation that also computes `unnecessary(p)`, after the query."""
    return f"{render_solution(p.params, (*p.order, unnecessary(p)), LETTERS)} [ANS] {p.answer}"


def slip(p: Problem) -> str:
    """The gold solution with the result of its first binary step off by one (mod 23)."""
    step = re.search(r"= (\d+) [-+*] \d+ = (\d+)", p.solution)
    assert step is not None
    wrong = (int(step[2]) + 1) % MOD
    return p.solution[: step.start(2)] + str(wrong) + p.solution[step.end(2):]


def truncated(p: Problem) -> str:
    """The gold solution cut before its last `so` (the last sentence is unfinished), no answer."""
    return p.solution[: p.solution.rindex(" so ")]


def mix() -> list[tuple[Problem, str | None, bool, bool, str]]:
    """(problem, generation, correct, answer correct, first error) of twelve attempts known by construction."""
    p1, p2, p3, p4 = problems()
    return [
        (p1, gold(p1), True, True, ""),
        (p2, gold(p2), True, True, ""),
        (p3, with_unnecessary(p3), True, True, ""),
        (p4, gold(p4), True, True, ""),
        (p1, f"{p1.solution} [ANS] {(p1.answer + 1) % MOD}", False, False, "wrong_answer"),
        (p2, f"[ANS] {p2.answer}", False, True, "missing_necessary"),            # the answer without the steps
        (p3, f"{slip(p3)} [ANS] {p3.answer}", False, True, "arithmetic"),        # one step wrong, the answer right
        (p4, truncated(p4), False, False, "parse"),
        (p1, None, False, False, "too_long"),                                     # the prompt did not fit
        (p2, "", False, False, "missing_necessary"),
        (p1, "= = + 3 . so [SOL] Define", False, False, "parse"),                 # garbage tokens
        (p4, p4.solution, False, False, "wrong_answer"),                          # the answer line missing
    ]


def test_igsm_all_correct() -> None:
    attempts = score(problems(), [gold(p) for p in problems()], eval_set="test", decoding="greedy")
    assert [(a.correct, a.answer_correct, a.error, a.unnecessary_params) for a in attempts] == [(True, True, "", 0)] * 4
    assert summarize(attempts) == {"test": {"greedy": {
        "n": 4, "accuracy": 1.0, "answer_accuracy": 1.0, "answer_chance": 1 / 23,
        "by_op": {str(op): {"n": 1, "accuracy": 1.0} for op in (1, 2, 3, 4)}, "errors": {},
        "unnecessary_params_per_correct": 0.0, "unnecessary_ops_per_correct": 0.0}}}


def test_igsm_all_wrong() -> None:
    p1, p2, p3, p4 = problems()
    texts = [None, "", truncated(p3), f"{p4.solution} [ANS] {p4.answer} {p4.answer}",  # an unreadable answer
             f"{p1.solution} [ANS] 23", "[ANS]", f"{p3.solution} [ANS] {(p3.answer + 5) % MOD}", "Define Define"]
    chosen = [p1, p2, p3, p4, p1, p2, p3, p4]
    attempts = score(chosen, texts, eval_set="ood", decoding="beam4")
    assert [a.error for a in attempts] == ["too_long", "missing_necessary", "parse", "wrong_answer", "wrong_answer",
                                           "missing_necessary", "wrong_answer", "parse"]
    assert not any(a.correct or a.answer_correct for a in attempts)
    found = summarize(attempts)["ood"]["beam4"]
    assert found == {"n": 8, "accuracy": 0.0, "answer_accuracy": 0.0, "answer_chance": 1 / 23,
                     "by_op": {str(op): {"n": 2, "accuracy": 0.0} for op in (1, 2, 3, 4)},
                     "errors": {"too_long": 1, "missing_necessary": 2, "parse": 2, "wrong_answer": 3},
                     "unnecessary_params_per_correct": None, "unnecessary_ops_per_correct": None}


def test_igsm_known_mix_and_partial_credit() -> None:
    cases = mix()
    attempts = score([c[0] for c in cases], [c[1] for c in cases], eval_set="test", decoding="greedy")
    assert [(a.correct, a.answer_correct, a.error) for a in attempts] == [c[2:] for c in cases]
    assert [a.index for a in attempts] == list(range(12)) and [a.generation for a in attempts[8:10]] == ["", ""]
    p3 = problems()[2]
    extra_op = p3.params[unnecessary(p3)].op
    assert [(a.unnecessary_params, a.unnecessary_ops) for a in attempts[:4]] == [(0, 0), (0, 0), (1, extra_op), (0, 0)]
    found = summarize(attempts)["test"]["greedy"]
    assert found == {
        "n": 12, "accuracy": 4 / 12, "answer_accuracy": 6 / 12, "answer_chance": 1 / 23,
        # op 1: attempts 1, 5, 9, 11; op 2: 2, 6, 10; op 3: 3, 7; op 4: 4, 8, 12 (one correct each)
        "by_op": {"1": {"n": 4, "accuracy": 1 / 4}, "2": {"n": 3, "accuracy": 1 / 3}, "3": {"n": 2, "accuracy": 1 / 2},
                  "4": {"n": 3, "accuracy": 1 / 3}},
        "errors": {"wrong_answer": 2, "missing_necessary": 2, "arithmetic": 1, "parse": 2, "too_long": 1},
        "unnecessary_params_per_correct": 1 / 4, "unnecessary_ops_per_correct": extra_op / 4}


def test_igsm_reask_accuracy_by_op_range() -> None:
    """Accuracy within the trained op range (op <= max_op) and beyond, counted here from the attempts themselves."""
    cases = mix()
    attempts = score([c[0] for c in cases], [c[1] for c in cases], eval_set="reask", decoding="greedy")
    by_op = summarize(attempts)["reask"]["greedy"]["by_op"]
    for max_op in (0, 1, 2, 3, 4, 9):
        within = [a.correct for a in attempts if a.op <= max_op]
        beyond = [a.correct for a in attempts if a.op > max_op]
        assert by_op_range(by_op, max_op) == {
            "max_op": max_op,
            "op_le_max": {"n": len(within), "accuracy": pytest.approx(sum(within) / len(within)) if within else None},
            "op_gt_max": {"n": len(beyond), "accuracy": pytest.approx(sum(beyond) / len(beyond)) if beyond else None}}
    assert by_op_range(by_op, 2)["op_le_max"] == {"n": 7, "accuracy": pytest.approx(2 / 7)}  # ops 1, 2: one correct each


def test_igsm_summary_keeps_sets_and_decodings_apart() -> None:
    p1, p2, _, _ = problems()
    greedy = score([p1, p2], [gold(p1), ""], eval_set="test", decoding="greedy")
    beam = score([p1, p2], ["", gold(p2)], eval_set="test", decoding="beam2")
    other = score([p1, p2, p1], [gold(p1), gold(p2), None], eval_set="reask", decoding="greedy")
    found = summarize(beam + other + greedy)
    assert {s: {d: c["accuracy"] for d, c in v.items()} for s, v in found.items()} == \
        {"test": {"greedy": 0.5, "beam2": 0.5}, "reask": {"greedy": 2 / 3}}
    assert found["test"]["greedy"]["by_op"] == {"1": {"n": 1, "accuracy": 1.0}, "2": {"n": 1, "accuracy": 0.0}}
    assert found["test"]["beam2"]["by_op"] == {"1": {"n": 1, "accuracy": 0.0}, "2": {"n": 1, "accuracy": 1.0}}
    assert sorted(accuracy_rows(found), key=lambda r: (r["eval_set"], r["decoding"], r["op"])) == [
        {"eval_set": "reask", "decoding": "greedy", "op": 1, "n": 2, "accuracy": 0.5},
        {"eval_set": "reask", "decoding": "greedy", "op": 2, "n": 1, "accuracy": 1.0},
        {"eval_set": "test", "decoding": "beam2", "op": 1, "n": 1, "accuracy": 0.0},
        {"eval_set": "test", "decoding": "beam2", "op": 2, "n": 1, "accuracy": 1.0},
        {"eval_set": "test", "decoding": "greedy", "op": 1, "n": 1, "accuracy": 1.0},
        {"eval_set": "test", "decoding": "greedy", "op": 2, "n": 1, "accuracy": 0.0},
    ]


def prompt_ids(p: Problem) -> tuple[int, ...]:
    return (Vocab.bos_id, *VOCAB.encode(igsm_prompt(p.problem)))


def igsm_model(texts: dict[Problem, str], context: int, *, eos: bool = True) -> Scripted:
    """A model that writes texts[problem] after the problem's prompt, then <eos> (eos=False: "7" for ever)."""
    table = {prompt_ids(p): VOCAB.encode(text) + [Vocab.eos_id] * eos for p, text in texts.items()}
    return Scripted(VOCAB.size, context, lambda row, prompt: table[prompt], VOCAB.id("7"))


@pytest.mark.parametrize("beams", [1, 3])
def test_igsm_solve_score_summarize_end_to_end(beams: int) -> None:
    p1, p2, p3, p4 = chosen = problems()
    right = [gold(p1), gold(p2), with_unnecessary(p3), gold(p4)]
    partial = [f"[ANS] {p1.answer}", "", f"{slip(p3)} [ANS] {p3.answer}", truncated(p4)]
    decoding = "greedy" if beams == 1 else f"beam{beams}"
    attempts = []
    for texts in (right, partial):
        solved = solve(igsm_model(dict(zip(chosen, texts)), context=256), chosen, VOCAB, beams=beams, batch_size=3)
        assert solved == texts
        attempts += score(chosen, solved, eval_set="opmax", decoding=decoding)
    extra_op = p3.params[unnecessary(p3)].op
    assert summarize(attempts) == {"opmax": {decoding: {
        "n": 8, "accuracy": 4 / 8, "answer_accuracy": 6 / 8, "answer_chance": 1 / 23,
        "by_op": {str(op): {"n": 2, "accuracy": 0.5} for op in (1, 2, 3, 4)},
        "errors": {"missing_necessary": 2, "arithmetic": 1, "parse": 1},
        "unnecessary_params_per_correct": 1 / 4, "unnecessary_ops_per_correct": extra_op / 4}}}


def test_igsm_solve_prompt_too_long_and_runaway() -> None:
    p1, p2, _, p4 = problems()
    long = p4 if len(prompt_ids(p4)) > len(prompt_ids(p2)) else p2
    context = len(prompt_ids(long))  # that prompt leaves no room; the others do
    texts = solve(igsm_model({p1: gold(p1), long: gold(long)}, context), [p1, long], VOCAB, beams=1, batch_size=4)
    assert texts == [gold(p1), None]
    # a model that writes the right solution and answer but never <eos>: the answer is unreadable
    (runaway,) = solve(igsm_model({p1: gold(p1)}, context, eos=False), [p1], VOCAB, beams=1, batch_size=4)
    assert runaway is not None and runaway.startswith(gold(p1) + " 7 7")
    attempts = score([p1, long, p1], [*texts, runaway], eval_set="test", decoding="greedy")
    assert [(a.correct, a.answer_correct, a.error) for a in attempts] == \
        [(True, True, ""), (False, False, "too_long"), (False, False, "wrong_answer")]
    assert summarize(attempts)["test"]["greedy"]["accuracy"] == 1 / 3


# ------------------------------------------------------------------------------------------ grammars

GRAMMAR = "cfg3b"
CONTEXT = 440  # above the longest cfg3b sentence (432 terminals) + <bos> + <eos>
TERMINAL = 2   # the token of terminal 1: the filler of runs that never end


@functools.cache
def grammar() -> Grammar:
    return load_grammar(GRAMMAR)


def shortest(g: Grammar) -> int:
    """The grammar's shortest sentence, from its rules alone (terminals have length 1)."""
    memo: dict[int, int] = {t: 1 for t in g.terminals}

    def length(symbol: int) -> int:
        if symbol not in memo:
            memo[symbol] = min(sum(length(x) for x in alt) for alt in g.rules[symbol])
        return memo[symbol]

    return length(g.root)


@functools.cache
def sentences() -> list[list[int]]:
    return [s.tokens for s in sample_sentences(grammar(), 7, 0, 6)]


def ids(terminals: Sequence[int]) -> list[int]:
    return [t + 1 for t in terminals]


def test_cfg_non_members_used_here() -> None:
    g, s = grammar(), sentences()
    assert shortest(g) > 50  # so a 50-token prefix and a 5-token string are not sentences
    assert all(Judge(g)(x) for x in s) and not Judge(g)(s[5][:-1])  # the last token dropped: not a sentence (trusted)


def test_cfg_cut0_known_samples() -> None:
    g0, g1, _, _, _, _ = sentences()
    scripts = [ids(g0) + [1], ids(g0) + [1], ids(g1) + [1], ids([2] * 5) + [1],  # two sentences, one twice; a short string
               [],                                                             # never ends: malformed
               [3, Vocab.bos_id, 4, Vocab.eos_id],                             # <bos> inside: malformed
               [Vocab.eos_id]]                                                 # the empty string
    model = Scripted(len(grammar().terminals) + 2, CONTEXT, lambda row, prompt: scripts[row], TERMINAL)
    samples = sample_cut0(model, samples=7, context=CONTEXT, temperature=1.0, seed=3, batch_size=3)
    assert samples == [g0, g0, g1, [2] * 5, None, None, []]
    found = score_samples(samples, Judge(grammar()), train_set={tuple(g1)})
    # correct: g0, g0, g1; lengths of the 5 well-formed strings; distinct: g0, g1, the short one, the empty one
    assert vars(found) == {"accuracy": 3 / 7, "n": 7, "mean_length": (2 * len(g0) + len(g1) + 5 + 0) / 5,
                           "distinct": 4 / 7, "seen_in_train": 1 / 3}
    assert score_samples(samples, Judge(grammar()), train_set=set()).seen_in_train == 0.0


def cut50_model() -> Scripted:
    """Continuations of the 50-token heads of sentences 0..5: the true rest (0, 1), <eos> at once (2), never
    <eos> (3), the rest with <bos> inside (4), the rest without its last token (5)."""
    s = sentences()
    tails = [ids(s[0][50:]) + [1], ids(s[1][50:]) + [1], [1], [], ids(s[4][50:60]) + [Vocab.bos_id] + ids(s[4][60:]) + [1],
             ids(s[5][50:-1]) + [1]]
    table = {(Vocab.bos_id, *ids(x[:50])): tail for x, tail in zip(s, tails)}
    assert len(table) == 6
    return Scripted(len(grammar().terminals) + 2, CONTEXT, lambda row, prompt: table[prompt], TERMINAL)


def test_cfg_cut50_known_continuations() -> None:
    s = sentences()
    chosen = [s[0], s[1], s[2], s[3], s[4], s[5], s[1]]
    samples = sample_prefix(cut50_model(), chosen, prefix=50, context=CONTEXT, temperature=1.0, seed=4, batch_size=4)
    assert samples == [s[0], s[1], s[2][:50], None, None, s[5][:-1], s[1]]
    found = score_samples(samples, Judge(grammar()), train_set={tuple(s[1])})
    # correct: s0, s1, s1; well-formed: s0, s1, the head of s2, s5 less its last token, s1
    assert vars(found) == {"accuracy": 3 / 7, "n": 7,
                           "mean_length": (len(s[0]) + len(s[1]) + 50 + len(s[5]) - 1 + len(s[1])) / 5,
                           "distinct": 4 / 7, "seen_in_train": 2 / 3}


def test_cfg_evaluate_step_end_to_end(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The evaluate step on files like the generate stage's, with the scripted models in place of the trained
    model (cut0: sentences 0, 0, 1 and a short string; cut50: the heads of test sentences 0..3) and of the
    random-init control (the empty string)."""
    g, s = grammar(), sentences()
    (tmp_path / "grammar.txt").write_text(format_grammar(g))
    pl.DataFrame({"tokens": [s[1], s[3]]}).write_parquet(tmp_path / "train.parquet")
    pl.DataFrame({"tokens": [s[0], s[1], s[2], s[3], s[4]]}).write_parquet(tmp_path / "test.parquet")
    cut0 = [ids(s[0]) + [1], ids(s[0]) + [1], ids(s[1]) + [1], ids([3] * 5) + [1]]
    heads = cut50_model()

    def script(row: int, prompt: tuple[int, ...]) -> Sequence[int]:
        return cut0[row] if prompt == (Vocab.bos_id,) else heads.script(row, prompt)

    vocab_size = len(g.terminals) + 2
    monkeypatch.setattr(cfg_evaluate, "load_model", lambda path, device: Scripted(vocab_size, CONTEXT, script, TERMINAL))
    monkeypatch.setattr(cfg_evaluate, "random_model", lambda *a: Scripted(vocab_size, CONTEXT, lambda r, p: [1], TERMINAL))
    e = SimpleNamespace(samples=4, prefix_samples=4, prefix=50, temperature=1.0, batch_size=3, control_samples=2,
                        kl_sentences=0, unseen_prompts=False, robust=SimpleNamespace(sentences=0, temperatures=[1.0]))
    found = cfg_evaluate.evaluate(SimpleNamespace(raw=tmp_path, model=tmp_path, study="scripted"),
                                  SimpleNamespace(seed=0, evaluate=e), torch.device("cpu")).metrics
    assert found["cut0"] == {"accuracy": 3 / 4, "n": 4, "mean_length": (2 * len(s[0]) + len(s[1]) + 5) / 4,
                             "distinct": 3 / 4, "seen_in_train": 1 / 3}
    # test sentences 0..3 (1 and 3 are training sentences): the true rest (0, 1), the head alone (2), never ending (3)
    assert found["cut50"] == {"accuracy": 2 / 4, "n": 4, "mean_length": (len(s[0]) + len(s[1]) + 50) / 3,
                              "distinct": 3 / 4, "seen_in_train": 1 / 2, "prompts_in_train": 2 / 4, "prompt_heads_in_train": 2 / 4}
    assert found["control_cut0"] == {"accuracy": 0.0, "n": 2, "mean_length": 0.0, "distinct": 1 / 2, "seen_in_train": 0.0}
    assert found["data"] == {"test_sentences_accepted": 1.0, "test_sentences_in_train": 2 / 5, "unseen_prompts": False}
    assert found["diversity_cut0"]["model"]["n"] == 3 and found["diversity_cut0"]["model"]["collisions"] == 1


@pytest.mark.parametrize("unseen", [True, False])
def test_cfg_evaluate_prompts_unseen_in_train(tmp_path, monkeypatch: pytest.MonkeyPatch, unseen: bool) -> None:
    """Test and train overlap (test sentences 1 and 3 are training sentences, and a training string shares test
    sentence 0's 50-token head): with `unseen_prompts` the cut50 prompts, KL sentences and corrupted prompts
    are the test sentences outside the training split, and every overlap figure is counted here by hand."""
    g, s = grammar(), sentences()
    train = [s[1], s[3], s[0][:50] + [0, 0, 0]]
    test = [s[0], s[1], s[2], s[3], s[4]]
    (tmp_path / "grammar.txt").write_text(format_grammar(g))
    pl.DataFrame({"tokens": train}).write_parquet(tmp_path / "train.parquet")
    pl.DataFrame({"tokens": test}).write_parquet(tmp_path / "test.parquet")
    heads = cut50_model()
    vocab_size = len(g.terminals) + 2
    script = lambda row, prompt: [1] if prompt == (Vocab.bos_id,) else heads.script(row, prompt)  # noqa: E731
    monkeypatch.setattr(cfg_evaluate, "load_model", lambda path, device: Scripted(vocab_size, CONTEXT, script, TERMINAL))
    monkeypatch.setattr(cfg_evaluate, "random_model", lambda *a: Scripted(vocab_size, CONTEXT, lambda r, p: [1], TERMINAL))
    seen: dict[str, list] = {}

    def kl(net, grammar, sentences, *a, **k) -> dict:
        seen.setdefault("kl", []).append([list(x) for x in sentences])
        return {"mean": 0.0}

    def robust(model, grammar, sentences, **k) -> dict:
        seen["robust"] = [list(x) for x in sentences]
        return {"n": len(sentences), "prefix": 50, "rate": 0.1, "kind": "replace", "k": 8,
                "T1.0": {"repaired": 0.0, "clean": 0.0, "follows_corruption": 0.0, "clean_breaks_early": 0.0}}

    monkeypatch.setattr(cfg_evaluate, "kl_to_grammar", kl)
    monkeypatch.setattr(cfg_evaluate, "robust_eval", robust)
    e = SimpleNamespace(samples=2, prefix_samples=4, prefix=50, temperature=1.0, batch_size=3, control_samples=0,
                        kl_sentences=5, unseen_prompts=unseen,
                        robust=SimpleNamespace(sentences=5, rate=0.1, kind="replace", temperatures=[1.0]))
    found = cfg_evaluate.evaluate(SimpleNamespace(raw=tmp_path, model=tmp_path, study="scripted"),
                                  SimpleNamespace(seed=0, evaluate=e), torch.device("cpu")).metrics
    train_set = {tuple(t) for t in train}
    outside = [t for t in test if tuple(t) not in train_set]
    assert outside == [s[0], s[2], s[4]]
    prompts = (outside if unseen else test)[:4]
    in_train = sum(tuple(t) in train_set for t in prompts) / len(prompts)
    head_in_train = sum(any(t[:50] == x[:50] for x in train) for t in prompts) / len(prompts)
    assert (in_train, head_in_train) == ((0.0, 1 / 3) if unseen else (2 / 4, 3 / 4))
    assert seen["robust"] == prompts and found["robust"]["prompts_in_train"] == in_train
    assert seen["kl"] == [outside if unseen else test] * 2  # trained and control, all shorter than the context
    assert found["kl"]["sentences_in_train"] == (0.0 if unseen else 2 / 5)
    cut = found["cut50"]
    assert (cut["n"], cut["prompts_in_train"], cut["prompt_heads_in_train"]) == (len(prompts), in_train, head_in_train)
    if unseen:  # prompts 0, 2, 4: the true rest (correct, not a training sentence), the head alone, <bos> inside
        assert vars(score_samples([s[0], s[2][:50], None], Judge(g), train_set)) == {
            k: v for k, v in cut.items() if k not in ("prompts_in_train", "prompt_heads_in_train")}
        assert (cut["accuracy"], cut["seen_in_train"]) == (1 / 3, 0.0)
    assert found["data"] == {"test_sentences_accepted": 1.0, "test_sentences_in_train": 2 / 5, "unseen_prompts": unseen}
    headline = cfg_evaluate.headline(found, e)
    assert headline["cut50_prompts_in_train"] == in_train and headline["cut50_accuracy"] == cut["accuracy"]
    table = markdown({"s": {"evaluate": found, "probe": {}}})
    assert f"| s | cut50 | {cut['accuracy']:.3f} | {len(prompts)} |" in table and f"| {in_train:.3f} |\n" in table
    assert f"replace at 0.1, {in_train:.3f} in train |" in table and "| s | 0.000 | 0.000 | " + f"{found['kl']['sentences_in_train']:.3f} |" in table
