"""The Depo world (physlm/worlds/depo): generator against an independent oracle and SPEC 11.1.1's measured
sizes, its distributions, determinism, the loss mask, scoring against a scripted model whose answers are known,
the preset, and the stages end to end on a tiny dataset.

The oracle (`parse`, `follow`) reads only the rendered `text` and V: it splits the edge section into words at
their end symbols (> V), pairs them up, checks the successor map is one cycle over n distinct words, and
follows it k hops from each query word; the generator's structured columns are checked against it, never
the other way round.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
import yaml
import torch
from scipy import stats
from torch import Tensor, nn

import generations

from physlm.playground import size_probabilities
from physlm.worlds.depo.evaluate import score, summarize
from physlm.worlds.depo.generate import frame, generate, sample_split
from physlm.worlds.depo.instance import example
from physlm.worlds.depo.params import DepoGenerateParams
from physlm.worlds.depo.spec import DepoSpec, default_test_hops
from physlm.worlds.depo.tokenize import DepoTokens, encode_instances, encode_split

ROOT = Path(__file__).resolve().parents[1]
DEPO1 = DepoSpec(N=375, K=8, vocab=50, min_len=1, max_len=2)
DEPO2 = DepoSpec(N=125, K=16, vocab=3, min_len=5, max_len=7)  # the released code's vocab, as SPEC 11.1.1 measured
SMALL = DepoSpec(N=12, K=4, vocab=3, min_len=2, max_len=3)


# ------------------------------------------------------------------------------------------------ oracle


def split_words(symbols: list[int], V: int) -> list[tuple[int, ...]]:
    words, current = [], []
    for s in symbols:
        current.append(s)
        if s > V:
            words.append(tuple(current))
            current = []
    assert not current, "the edge section ends inside a word"
    return words


def parse(text: str, V: int) -> tuple[dict, list[tuple[int, tuple, tuple]]]:
    """(successor map, [(k, query word, answer word)]) of a rendered instance."""
    toks = text.split()
    first = next(i for i, t in enumerate(toks) if t.startswith("<query_"))
    words = split_words([int(t) for t in toks[:first]], V)
    assert len(words) % 2 == 0
    successor = {}
    for a, b in zip(words[0::2], words[1::2]):
        assert a not in successor, "a word leaves twice"
        successor[a] = b
    queries, i = [], first
    while i < len(toks):
        k = int(toks[i].removeprefix("<query_").removesuffix(">"))
        j = toks.index("<ans>", i)
        nxt = next((m for m in range(j, len(toks)) if toks[m].startswith("<query_")), len(toks))
        q, (a,) = split_words([int(t) for t in toks[i + 1 : j]], V), split_words([int(t) for t in toks[j + 1 : nxt]], V)
        assert len(q) == 1
        queries.append((k, q[0], a))
        i = nxt
    return successor, queries


def check_cycle(successor: dict) -> int:
    """The map is a permutation of its words with a single cycle; returns its length."""
    assert set(successor.values()) == set(successor), "edges are not a permutation"
    start = next(iter(successor))
    seen, w = {start}, successor[start]
    while w != start:
        assert w not in seen
        seen.add(w)
        w = successor[w]
    assert len(seen) == len(successor), "more than one cycle"
    return len(seen)


def follow(successor: dict, word: tuple, k: int) -> tuple:
    for _ in range(k):
        word = successor[word]
    return word


def check_frame(f: pl.DataFrame, spec: DepoSpec, test: bool) -> None:
    V = spec.vocab
    for row in f.iter_rows(named=True):
        successor, queries = parse(row["text"], V)
        n = check_cycle(successor)
        assert n == row["n"] == len(row["words"]) and (n == spec.N if test else 3 <= n <= spec.N)
        assert len({w for w in successor}) == n  # distinct words
        for w in successor:
            assert spec.min_len <= len(w) <= spec.max_len and all(1 <= s <= V for s in w[:-1]) and V < w[-1] <= 2 * V
        assert len(queries) == min(spec.queries, n) and len({q for _, q, _ in queries}) == len(queries)  # distinct sources
        for (k, q, a), qk in zip(queries, row["hops"]):
            assert k == qk and 1 <= k <= spec.K and a == follow(successor, q, k)
            if test:
                assert k in spec.test_hops
        # the structured columns say the same
        words = [tuple(w) for w in row["words"]]
        assert all(successor[words[i]] == words[(i + 1) % n] for i in range(n))
        assert [words[i] for i in row["queries"]] == [q for _, q, _ in queries]
        assert [words[i] for i in row["answers"]] == [a for _, _, a in queries]
        assert row["length"] == len(row["text"].split())


@pytest.mark.parametrize("spec", [SMALL, DepoSpec(N=40, K=8, vocab=50, min_len=1, max_len=2),
                                  DepoSpec(N=30, K=16, vocab=4, min_len=5, max_len=7)])
def test_oracle_checks_every_answer(spec):
    for split, count in (("train", 150), ("test", 40)):
        check_frame(sample_split(spec, 3, split, count), spec, test=split == "test")


def test_oracle_catches_a_wrong_answer():
    f = sample_split(SMALL, 0, "test", 3)
    text = f["text"][0].split()
    at = text.index("<ans>") + 1
    text[at] = str(int(text[at]) % SMALL.vocab + 1)  # another inner symbol (answers here have >= 2 symbols)
    with pytest.raises(AssertionError):
        check_frame(f.with_columns(pl.Series("text", [" ".join(text), *f["text"][1:]])), SMALL, test=True)


# ---------------------------------------------------------------------------------- SPEC 11.1.1 sizes


def sizes(spec: DepoSpec, split: str, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Tokens per instance with the <bos> the released code counts, and label-1 tokens (<ans> + answer)."""
    insts = [example(spec, 11, split, i) for i in range(count)]
    tokens = np.asarray([len(i.render()) + 1 for i in insts])
    labels = np.asarray([sum(1 + len(i.words[a]) for a in i.answers) for i in insts])
    return tokens, labels


@pytest.mark.parametrize("spec, test_tokens, test_max, label, train_mean",
                         [(DEPO1, 1460, None, 29, 426), (DepoSpec(N=225, K=8, vocab=50, min_len=1, max_len=2), 860, None, 29, 279),
                          (DEPO2, 1654, 1688, 70, 686), (DepoSpec(N=75, K=16, vocab=3, min_len=5, max_len=7), 1044, 1085, 70, 442)])
def test_sizes_match_spec(spec, test_tokens, test_max, label, train_mean):
    """Test instances (n = N) within 1% of SPEC 11.1.1's mean (their spread is small: 200 of them pin the
    mean to ~0.1%), label-1 tokens within 1.5 of it, the largest within 3%. Training means within 10% of the
    SPEC's, which measured a few hundred instances whose tokens vary by ~400 (a standard error of ~4%),
    and within 3% of the exact law: E over P(n) of 1 + 2 n m + min(10, n) (2 + 2 m) with m the mean word length."""
    tokens, labels = sizes(spec, "test", 200)
    assert abs(tokens.mean() / test_tokens - 1) < 0.01, tokens.mean()
    assert abs(labels.mean() - label) < 1.5, labels.mean()
    if test_max:
        assert abs(tokens.max() / test_max - 1) < 0.03, tokens.max()
    train, _ = sizes(spec, "train", 2000)
    assert abs(train.mean() / train_mean - 1) < 0.10, train.mean()
    n = np.arange(3, spec.N + 1)
    m = (spec.min_len + spec.max_len) / 2 if spec.vocab < 50 else None
    if m is not None:  # Depo2: so many words of each length that rejection barely moves the mean length
        law = float((size_probabilities(spec.N) * (1 + 2 * n * m + np.minimum(10, n) * (2 + 2 * m))).sum())
        assert abs(train.mean() / law - 1) < 0.03, (train.mean(), law)


# ---------------------------------------------------------------------------------- distributions


def test_hops_train_uniform_test_powers_of_two():
    spec = DepoSpec(N=20, K=8, vocab=5, min_len=1, max_len=2)
    train = np.concatenate([example(spec, 0, "train", i).hops for i in range(600)])
    counts = np.bincount(train, minlength=9)[1:]
    assert counts.min() > 0 and stats.chisquare(counts).pvalue > 1e-3
    test = np.concatenate([example(spec, 0, "test", i).hops for i in range(300)])
    assert set(test.tolist()) == {1, 2, 4, 8}
    assert stats.chisquare([int((test == k).sum()) for k in (1, 2, 4, 8)]).pvalue > 1e-3
    assert default_test_hops(8) == (1, 2, 4, 8) and default_test_hops(16) == (1, 2, 4, 8, 16)
    assert default_test_hops(12) == (1, 2, 4, 8, 12) and default_test_hops(1) == (1,)
    custom = DepoSpec(N=20, K=32, vocab=5, min_len=1, max_len=2, test_hops=(8, 24, 32))
    assert set(np.concatenate([example(custom, 0, "test", i).hops for i in range(30)]).tolist()) == {8, 24, 32}


def test_training_sizes_follow_the_law():
    spec = DepoSpec(N=30, K=4, vocab=5, min_len=1, max_len=2)
    n = np.asarray([example(spec, 1, "train", i).n for i in range(3000)])
    observed = np.bincount(n, minlength=31)[3:]
    assert stats.chisquare(observed, size_probabilities(30) * len(n)).pvalue > 1e-3
    assert all(example(spec, 1, "test", i).n == 30 for i in range(5))


def test_small_cycles_query_every_word_once():
    spec = DepoSpec(N=3, K=5, vocab=4, min_len=1, max_len=1)
    for i in range(20):
        inst = example(spec, 0, "train", i)
        assert inst.n == 3 and sorted(inst.queries) == [0, 1, 2]


# ---------------------------------------------------------------------------------- determinism


def test_examples_are_pure_functions_and_workers_do_not_matter(tmp_path):
    spec = DepoSpec(N=10, K=4, vocab=4, min_len=1, max_len=2)
    one = sample_split(spec, 7, "train", 1100, workers=1)
    two = sample_split(spec, 7, "train", 1100, workers=2)  # three chunks on two processes
    assert one.equals(two)
    assert frame([example(spec, 7, "train", 1050)], 1050).equals(one.slice(1050, 1))  # regenerated alone
    assert not one.equals(sample_split(spec, 8, "train", 1100))
    assert sample_split(spec, 7, "test", 5)["text"].to_list() != one["text"][:5].to_list()
    params = DepoGenerateParams(variant="depo1", N=10, K=4, vocab=4, train_instances=50, test_instances=10)
    for out in ("a", "b"):
        (tmp_path / out).mkdir()
        assert generate(params, 7, tmp_path / out) == {"train": 50, "test": 10}
    for name in ("train.parquet", "test.parquet", "depo.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert json.loads((tmp_path / "a" / "depo.json").read_text()) == {"N": 10, "K": 4, "vocab": 4, "min_len": 1, "max_len": 2,
                                                                      "queries": 10, "test_hops": [1, 2, 4]}


# ---------------------------------------------------------------------------------- params


def test_params_variants_and_checks():
    d2 = DepoGenerateParams(variant="depo2", N=100, K=16, train_instances=1, test_instances=1).spec()
    assert (d2.vocab, d2.min_len, d2.max_len) == (4, 5, 7)  # the paper's vocab
    assert DepoGenerateParams(variant="depo2", N=100, K=16, vocab=3, train_instances=1, test_instances=1).spec().vocab == 3
    d1 = DepoGenerateParams(variant="depo1", N=375, K=8, train_instances=1, test_instances=1).spec()
    assert (d1.vocab, d1.min_len, d1.max_len, d1.test_hops) == (50, 1, 2, (1, 2, 4, 8))
    with pytest.raises(ValueError, match="N 30 needs 30 distinct words, but vocab 2 and lengths 1..2 give only 6"):
        DepoGenerateParams(variant="depo1", N=30, K=4, vocab=2, train_instances=1, test_instances=1)
    with pytest.raises(ValueError, match="test_hops"):
        DepoGenerateParams(variant="depo1", N=30, K=4, test_hops=[1, 8], train_instances=1, test_instances=1)
    with pytest.raises(ValueError, match="min_len 3 exceeds max_len 2"):
        DepoGenerateParams(variant="depo1", N=30, K=4, min_len=3, train_instances=1, test_instances=1)


# ---------------------------------------------------------------------------------- tokens and mask


def test_vocabulary_and_mask_cover_exactly_ans_and_answers(tmp_path):
    f = sample_split(SMALL, 2, "train", 30)
    f.write_parquet(tmp_path / "train.parquet")
    tokens = DepoTokens(SMALL)
    symbols = tokens.vocab.symbols
    assert symbols[:7] == ("<bos>", "<eos>", "<ans>", "<query_1>", "<query_2>", "<query_3>", "<query_4>")
    assert symbols[7:] == tuple(str(s) for s in range(1, 7)) and tokens.symbol_id(1) == 7
    assert [tokens.is_end(i) for i in range(7, 13)] == [False] * 3 + [True] * 3
    encoded = encode_split(tmp_path / "train.parquet", tokens, "answers")
    flat, offsets = encoded[:2]
    mask = encoded[2]
    assert len(mask) == len(flat) and mask.dtype == np.uint8
    for i, row in enumerate(f.iter_rows(named=True)):  # expected from the structured columns
        ids = flat[offsets[i] : offsets[i + 1]].tolist()
        want = [0] * len(ids)
        at = sum(len(row["words"][e]) + len(row["words"][(e + 1) % row["n"]]) for e in row["edges"])  # the edges
        for q, a in zip(row["queries"], row["answers"]):
            at += 1 + len(row["words"][q])  # <query_k> q
            assert ids[at] == tokens.ans_id
            want[at : at + 1 + len(row["words"][a])] = [1] * (1 + len(row["words"][a]))
            assert ids[at + 1 : at + 1 + len(row["words"][a])] == tokens.word_ids(row["words"][a])
            at += 1 + len(row["words"][a])
        assert at == len(ids) and mask[offsets[i] : offsets[i + 1]].tolist() == want
    assert int(mask.sum(dtype=np.int64)) == sum(sum(1 + len(r["words"][a]) for a in r["answers"]) for r in f.iter_rows(named=True))
    assert encode_split(tmp_path / "train.parquet", tokens, "all")[2].all()


# ---------------------------------------------------------------------------------- scoring


class Cache:
    def __init__(self) -> None:
        self.rows: list[list[int]] | None = None
        self.length = 0


class Policy(nn.Module):
    """A stand-in GPT whose next token after any prefix is `policy(prefix)` (logit lead 100), with a cache (the
    prefix so far, per row, left padding removed) or without (every position of every row)."""

    def __init__(self, policy, vocab_size: int, context: int = 512) -> None:
        super().__init__()
        self.policy, self.vocab_size = policy, vocab_size
        self.cfg = SimpleNamespace(context=context)
        self.anchor = nn.Parameter(torch.zeros(1))

    def new_cache(self, batch: int, positions: int | None = None) -> Cache:
        return Cache()

    def forward(self, idx: Tensor, targets=None, *, cache: Cache | None = None, pad: Tensor | None = None):
        logits = torch.zeros(idx.size(0), idx.size(1), self.vocab_size)
        if cache is None:
            for r, row in enumerate(idx.tolist()):
                for t in range(len(row)):
                    logits[r, t, self.policy(row[: t + 1])] = 100.0
            return logits, None
        if cache.rows is None:
            cache.rows = [row[0 if pad is None else int(pad[r]) :] for r, row in enumerate(idx.tolist())]
        else:
            cache.rows = [row + new for row, new in zip(cache.rows, idx.tolist())]
        for r, row in enumerate(cache.rows):
            logits[r, -1, self.policy(row)] = 100.0
        return logits, None


def scripted(tokens: DepoTokens, mode) -> callable:
    """After `<ans>` of the j-th query of a prefix, write by mode(j): "right" the answer (the oracle's, from the
    prefix's own text); "first_wrong" another first symbol, then the rest right; "special" an `<ans>` where the
    first symbol belongs, then the rest right; "unended" the answer with its end symbol turned into an inner
    one, then inner symbols. Elsewhere: symbol 1."""
    V, inv = tokens.spec.vocab, {i: s for i, s in enumerate(tokens.vocab.symbols)}

    def policy(prefix: list[int]) -> int:
        queries = [t for t, x in enumerate(prefix) if tokens.is_query(np.asarray(x))]
        if not queries or tokens.ans_id not in prefix[queries[-1] :]:
            return tokens.symbol_id(1)
        q_at = queries[-1]
        at = prefix.index(tokens.ans_id, q_at)  # the last query's <ans> (the policy may write another)
        toks = [inv[x] for x in prefix]
        words = split_words([int(x) for x in toks[1 : queries[0]]], V)
        successor = dict(zip(words[0::2], words[1::2]))
        answer = follow(successor, tuple(int(x) for x in toks[q_at + 1 : at]), int(toks[q_at][7:-1]))
        j = sum(x == tokens.ans_id for x in prefix[:at])  # the query's index in its instance
        i = len(prefix) - 1 - at  # symbols written so far
        m = mode(j)
        if i >= len(answer):
            return tokens.symbol_id(1)
        if m == "first_wrong" and i == 0:
            return tokens.symbol_id(answer[0] % V + 1 if answer[0] <= V else answer[0] - V)
        if m == "special" and i == 0:
            return tokens.ans_id
        if m == "unended" and i == len(answer) - 1:
            return tokens.symbol_id(answer[-1] - V)
        return tokens.symbol_id(answer[i])

    return policy


MODES = ("right", "first_wrong", "special", "unended")


def test_scoring_against_a_scripted_model():
    spec = DepoSpec(N=6, K=4, vocab=3, min_len=2, max_len=3)
    tokens = DepoTokens(spec)
    f = sample_split(spec, 4, "test", 6)
    instances = encode_instances(f, tokens)
    mode = lambda j: MODES[j % 4]  # noqa: E731
    model = Policy(scripted(tokens, mode), tokens.vocab.size)
    rows = score(model, instances, tokens, batch_size=5, device="cpu")
    assert len(rows) == 6 * 6
    for r in rows:
        m, length = mode(r["query"]), len(instances[r["instance"]].answers[r["query"]])
        assert r["correct"] == (m == "right") == r["exact_tf"]
        assert r["malformed"] == (m in ("special", "unended"))
        assert (r["tf_correct"], r["tf_total"]) == ((length, length) if m == "right" else (length - 1, length))
    s = summarize(rows)
    assert s["queries"] == 36 and math.isclose(s["accuracy"], 12 / 36) and math.isclose(s["malformed"], 12 / 36)  # queries 0..5: r, fw, sp, un, r, fw
    total = sum(len(w) for inst in instances for w in inst.answers)
    wrong = sum(1 for r in rows if mode(r["query"]) != "right")
    assert math.isclose(s["tf_accuracy"], (total - wrong) / total)
    for k, v in s["by_k"].items():
        mine = [r for r in rows if r["k"] == int(k)]
        assert v["queries"] == len(mine) and math.isclose(v["accuracy"], np.mean([mode(r["query"]) == "right" for r in mine]))
    assert set(s["by_k"]) == {str(k) for k in {r["k"] for r in rows}} <= {"1", "2", "4"}


def test_scoring_a_perfect_and_a_silent_model():
    spec = DepoSpec(N=5, K=2, vocab=2, min_len=1, max_len=2)
    tokens = DepoTokens(spec)
    instances = encode_instances(sample_split(spec, 1, "test", 4), tokens)
    perfect = summarize(score(Policy(scripted(tokens, lambda j: "right"), tokens.vocab.size), instances, tokens,
                              batch_size=3, device="cpu"))
    assert (perfect["accuracy"], perfect["tf_accuracy"], perfect["exact_tf"], perfect["malformed"]) == (1.0, 1.0, 1.0, 0.0)
    eos = Policy(lambda prefix: 1, tokens.vocab.size)  # writes <eos> at once: malformed, and wrong everywhere
    silent = summarize(score(eos, instances, tokens, batch_size=3, device="cpu"))
    assert (silent["accuracy"], silent["tf_accuracy"], silent["malformed"]) == (0.0, 0.0, 1.0)


def test_greedy_agrees_with_teacher_forcing_on_a_real_model():
    from physlm.model import GPT, GPTConfig

    spec = DepoSpec(N=6, K=2, vocab=2, min_len=1, max_len=2)
    tokens = DepoTokens(spec)
    instances = encode_instances(sample_split(spec, 1, "test", 8), tokens)
    torch.manual_seed(4)
    model = GPT(GPTConfig(vocab_size=tokens.vocab.size, context=64, depth=1, width=32, heads=2)).eval()
    with torch.no_grad():  # specials' logits 0: this model writes some answers right by chance, some malformed
        model.head.weight[: tokens.symbol_id(1)] = 0.0
    rows = score(model, instances, tokens, batch_size=4, device="cpu")
    assert 0 < sum(r["correct"] for r in rows) < len(rows) and any(r["malformed"] for r in rows)
    assert all(r["correct"] == r["exact_tf"] for r in rows)


# ---------------------------------------------------------------------------------- presets


def test_depo_paper_preset_builds_the_grid():
    from physlm.worlds.depo.presets import ARCHS, depo_paper

    params = {"probe": {}, "evaluate": {}, "datasets": {"other": {"world": "cfg"}, "old": {"world": "depo"}},
              "studies": {"old_study": {"world": "depo", "data": "old"}}}
    names = depo_paper(params)
    assert set(params["datasets"]) == {"other"} | {f"p41_depo1_N{n}" for n in (225, 300, 375)} | {f"p41_depo2_N{n}" for n in (75, 100, 125)}
    assert len(names) == 6 * (4 * 6 + 5) and "old_study" not in params["studies"]
    d2 = params["datasets"]["p41_depo2_N125"]
    assert d2["generate"].items() >= {"variant": "depo2", "N": 125, "K": 16, "vocab": 4}.items()
    assert d2["tokenize"] == {"context": 2048, "pack": "sentences", "loss": "answers"}
    s = params["studies"]["p41_depo1_N375_12L768D_nope_canon"]
    assert s["model"].items() >= {"depth": 12, "width": 768, "heads": 12, "block": "llama", "pos": "nope", "canon": "ABCD"}.items()
    t = s["train"]
    assert (t["steps"], t["batch_size"], t["beta2"], t["eps"], t["weight_decay"], t["warmup_steps"], t["decay"], t["min_lr_ratio"]) == \
        (112_500, 128, 0.98, 1.0e-6, 0.03, 1000, "cosine", 0.1)
    assert params["studies"]["p41_depo2_N75_8L512D_partial"]["model"]["rope_dim"] == 16
    assert params["studies"]["p41_depo2_N75_8L512D_partial"]["train"]["steps"] == 100_000
    assert params["studies"]["p41_depo1_N225_12L768D_rope_canonAC"]["model"]["canon"] == "AC"
    assert {n.rsplit("_", 1)[-1] for n in names if "_12L768D_" in n} >= {"canonA", "canonB", "canonC", "canonD", "canonAC"}
    assert set(ARCHS) == {"rope", "rope_canon", "nope", "nope_canon", "partial", "partial_canon"}
    with pytest.raises(SystemExit, match="depo1 N=100"):
        depo_paper({"probe": {}, "evaluate": {}, "datasets": {}, "studies": {}}, ns={"depo1": [100]})


def test_depo_paper_validates_through_the_command(tmp_path):
    from physlm.params import ModelParams
    from physlm.presets import main

    if "block" not in ModelParams.model_fields:
        pytest.skip("the engine has no Llama block / NoPE / partial RoPE options yet (model.block)")
    path = tmp_path / "params.yaml"
    path.write_text((ROOT / "params.yaml").read_text())
    main(["depo-paper", "--params", str(path), "--variants", "depo2", "--depo2-n", "75", "--sizes", "8L512D"])
    after = yaml.safe_load(path.read_text())
    assert {n for n, s in after["studies"].items() if s["world"] == "depo"} == \
        {f"p41_depo2_N75_8L512D_{a}" for a in ("rope", "rope_canon", "nope", "nope_canon", "partial", "partial_canon")} | \
        {f"p41_depo2_N75_12L768D_rope_canon{c}" for c in ("A", "B", "C", "D", "AC")}


# ---------------------------------------------------------------------------------- the stages


TINY = {
    "model": {"depth": 1, "width": 32, "heads": 2},
    "train": {"steps": 30, "batch_size": 8, "micro_batch_size": 8, "lr": 3.0e-3, "warmup_steps": 3, "eval_every": 15,
              "eval_batches": 1, "checkpoint_every": 15, "log_every": 5},
}


def depo_params() -> dict:
    from physlm.config import merge

    repo = yaml.safe_load((ROOT / "params.yaml").read_text())
    params = merge({k: repo[k] for k in ("seed", "nproc", "model", "train", "probe", "evaluate")}, TINY)
    params["probe"]["depo"] = {"instances": 12, "train_fraction": 0.5, "steps": 20, "lr": 5.0e-2, "batch_size": 4, "control": True}
    params["evaluate"]["depo"] = {"instances": 10, "batch_size": 16, "control": True}
    generate = {"variant": "depo1", "N": 8, "K": 4, "vocab": 6, "train_instances": 300, "test_instances": 20}
    params["datasets"] = {"depo_tiny": {"world": "depo", "generate": generate,
                                        "tokenize": {"context": 128, "pack": "sentences", "loss": "answers"}}}
    params["studies"] = {"depo_tiny": {"world": "depo", "data": "depo_tiny", "model": {}, "train": {}, "probe": {},
                                       "evaluate": {}}}
    return params


def test_stages_end_to_end(tmp_path, monkeypatch, one_thread):
    import stages.evaluate
    import stages.generate
    import stages.probe
    import stages.report
    import stages.tokenize
    import stages.train
    from physlm.cli import run_stage

    monkeypatch.setenv("PHYSLM_TRACKING", "0")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(depo_params(), sort_keys=False))
    for stage, name in (("generate", "depo_tiny"), ("tokenize", "depo_tiny"), ("train", "depo_tiny"), ("probe", "depo_tiny"),
                        ("evaluate", "depo_tiny"), ("report", None)):
        run_stage(stage, getattr(stages, stage).main, [name] if name else [])
    meta = json.loads(Path("data/depo_tiny/tokens/meta.json").read_text())
    assert meta["world"] == "depo" and meta["depo"]["test_hops"] == [1, 2, 4] and meta["vocab_size"] == 2 + 1 + 4 + 12
    headline = json.loads(Path("metrics/depo_tiny/evaluate.json").read_text())
    assert set(headline) == {"acc_k1", "acc_kK_half", "acc_kK", "tf_kK"}
    detail = json.loads(Path("metrics/depo_tiny/detail/evaluate.json").read_text())
    assert detail["instances"] == 10 and set(detail["trained"]["by_k"]) <= {"1", "2", "4"} and "control" in detail
    assert sum(v["queries"] for v in detail["trained"]["by_k"].values()) == detail["trained"]["queries"] == 80
    for v in detail["trained"]["by_k"].values():  # greedy exact match and all-right teacher forcing agree
        assert math.isclose(v["accuracy"], v["exact_tf"]) and 0.0 <= v["tf_accuracy"] <= 1.0
    probe = json.loads(Path("metrics/depo_tiny/detail/probe.json").read_text())
    assert set(probe["trained"]) == set(probe["control"]) == {"answer", "hop1"} and probe["queries"] == 96
    rows = Path("metrics/depo_tiny/probe/probe.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 2 * 2  # models x targets x layers (embeddings, block 1)
    summary = Path("reports/summary.md").read_text()
    assert "## Depo (Part 4.1)" in summary and "| | depo_tiny |" in summary and "| **k = 4** | " in summary
    assert Path("reports/depo_accuracy.png").is_file() and Path("reports/depo_probe.png").is_file()
    check_generations(Path("."), detail)


def check_generations(root: Path, detail: dict) -> None:
    """generations/depo_tiny/evaluate.parquet: a row per query of each model; the expected answer is the query's
    in raw/test.parquet; re-judged (exact match of the symbols written), the verdicts and accuracies come back."""
    from physlm.worlds.depo.tokenize import COLUMNS, load_tokens

    frame = generations.read(root, "depo_tiny", {"query": pl.Int64, "k": pl.Int64, "expected": pl.String,
                                                 "tf_correct": pl.Int64, "tf_total": pl.Int64})
    raw = root / "data/depo_tiny/raw"
    tokens = load_tokens(raw)
    instances = encode_instances(pl.read_parquet(raw / "test.parquet", columns=list(COLUMNS)), tokens)
    for row in frame.iter_rows(named=True):
        inst = instances[row["index"]]
        assert row["expected"] == " ".join(tokens.vocab.symbols[t] for t in inst.answers[row["query"]])
        assert row["k"] == inst.hops[row["query"]] and row["prompt"].endswith("<ans>")
    generations.rejudge(frame, lambda row: row["output"] == row["expected"])
    generations.matches_metrics(frame, detail, ("set",), "accuracy", "queries", {"trained", "control"})
    assert frame.height == 2 * 80



def test_report_one_column_per_study(tmp_path):
    from physlm.worlds.depo.report import section

    def study(K, by_k, control=None):
        block = lambda a: {"queries": 10, "accuracy": a, "tf_accuracy": a, "exact_tf": a, "malformed": 0.0}  # noqa: E731
        ev = {"instances": 5, "N": 20, "K": K, "trained": {**block(0.5), "by_k": {str(k): block(a) for k, a in by_k.items()}}}
        if control is not None:
            ev["control"] = block(control)
        rows = [{"model": "trained", "target": t, "layer": str(layer), "accuracy": "0.5"} for t in ("answer", "hop1") for layer in (0, 1)]
        probe = {"trained": {"answer": {"last": 0.5, "best": 0.6, "best_layer": 1, "majority": 0.1}}}
        return {"evaluate": ev, "probe": probe, "tables": {"probe": rows}}

    text = section({"a_rope": study(4, {1: 1.0, 2: 0.75, 4: 0.25}, control=0.0), "b_canon": study(8, {1: 1.0, 8: 0.125})}, tmp_path)
    assert "| | a_rope | b_canon |" in text
    assert "| **k = 2** | 0.750 (0.750) | – |" in text and "| **k = 8** | – | 0.125 (0.125) |" in text
    assert "| random-init control, all k | 0.000 | – |" in text and "| a_rope | trained | answer | 0.500 | 1 (0.600) | 0.100 |" in text
    assert (tmp_path / "depo_accuracy.png").is_file() and (tmp_path / "depo_probe.png").is_file()
    assert section({"x": {"evaluate": {}, "probe": {}, "tables": {}}}, tmp_path) == ""


def test_vectorised_encoding_equals_word_by_word():
    from physlm.errors import DataError
    from physlm.worlds.depo.tokenize import encode_texts

    tokens = DepoTokens(SMALL)
    texts = sample_split(SMALL, 5, "train", 40)["text"]
    flat, offsets = encode_texts(texts, tokens, chunk=7)
    assert [flat[a:b].tolist() for a, b in zip(offsets[:-1], offsets[1:])] == [tokens.encode(t) for t in texts]
    with pytest.raises(DataError, match="token '<query_9>' is not in the Depo vocabulary"):
        encode_texts(pl.Series(["1 4 <query_9> 4"]), tokens)


def test_the_showcase_runs_the_presets_demo():
    """params.yaml's Depo miniature is depo/presets.py's DEMO_* (which SUITE adds seeds and ablations to)."""
    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    from physlm.worlds.depo.presets import DEMO_DATASET, DEMO_STUDIES, NOPE_STUDIES, SUITE

    assert params["datasets"]["depo_demo"] == DEMO_DATASET
    assert {k: v for k, v in params["studies"].items() if v["world"] == "depo"} == DEMO_STUDIES
    assert set(DEMO_STUDIES) == {"depo_rope", "depo_rope_canon"}
    for name, study in NOPE_STUDIES.items():  # the NoPE pair: the suite's, the showcase's model without positions
        assert SUITE["studies"][name] == study and study["model"]["pos"] == "nope"
        twin = DEMO_STUDIES[name.replace("nope", "rope")]
        assert {k: v for k, v in study["model"].items() if k != "pos"} == twin["model"] and study["train"] == twin["train"]
    assert all(SUITE["studies"][f"{name}_s{seed}"]["train"]["seed"] == seed
               for name in DEMO_STUDIES | NOPE_STUDIES for seed in (1, 2))
