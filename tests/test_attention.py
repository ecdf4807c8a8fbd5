"""Attention analysis: distance profiles against the exact patterns of "uni"/"pos" models, boundary statistics
against hand-computed values and a loop-by-loop reference, rows/summary/figures, and a real tiny GPT."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from physlm.worlds.cfg.attention import (
    KINDS,
    analyze_attention,
    analyze_maps,
    attention_maps,
    boundary_rows,
    boundary_stats,
    by_distance,
    cfg_inputs,
    distance_profile,
    distance_rows,
    distance_share,
    previous_end,
    summarize,
)
from physlm.worlds.cfg.report import plot_boundary, plot_distance
from physlm.io import write_csv
from physlm.model import GPT, GPTConfig
from physlm.worlds.cfg import grammar as cfg

pytestmark = pytest.mark.usefixtures("one_thread")


def random_ids(lengths: list[int], vocab: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.concatenate([[0], rng.integers(2, vocab, size=n - 1)]) for n in lengths]


# ------------------------------------------------------------------------------------- distance profile


def test_uni_profile_matches_the_exact_windows() -> None:
    torch.manual_seed(0)
    heads = 3
    model = GPT(GPTConfig(vocab_size=7, context=64, depth=1, width=12, heads=heads, pos="uni"))
    lengths = [40, 25, 64, 9]
    sequences = random_ids(lengths, 7)
    maps = list(attention_maps(model, sequences, batch_size=3))
    assert [m.shape for m in maps] == [(1, heads, n, n) for n in lengths]
    profile = distance_profile(maps)
    assert profile.shape == (1, heads, 64)
    for h in range(1, heads + 1):
        span = 2**h - 1
        # first principles: query i (model positions 1..n-1) averages the min(i, span) keys i-1 .. i-min(i, span)
        total, count = np.zeros(64), np.zeros(64)
        for n in lengths:
            for i in range(1, n):
                width = min(i, span)
                for d in range(0, i + 1):
                    count[d] += 1
                    total[d] += 1.0 / width if 1 <= d <= width else 0.0
        np.testing.assert_allclose(profile[0, h - 1], total / count, atol=1e-6)
        # far from position 0 every row is exactly 1/span on d = 1..span and 0 elsewhere
        rows = by_distance(maps[2])[0, h - 1]  # the 64-position sequence, [query, distance]
        ideal = np.zeros(64)
        ideal[1 : span + 1] = 1.0 / span
        for i in range(span, 64):
            np.testing.assert_allclose(rows[i, : i + 1], ideal[: i + 1], atol=1e-6)
    # the max_distance cut keeps the first distances; distances never reached are NaN
    cut = distance_profile(maps, max_distance=5)
    np.testing.assert_allclose(cut, profile[..., :6])
    assert np.isnan(distance_profile(maps, max_distance=70)[..., 64:]).all()


def test_pos_profile_follows_the_offset_logits() -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=7, context=32, depth=1, width=8, heads=2, pos="pos"))
    with torch.no_grad():
        model.blocks[0].attn.offset_logits.zero_()
        model.blocks[0].attn.offset_logits[0, 2] = 40.0  # head 1: everything on offset 2; head 2: uniform
    lengths = [32, 20]
    profile = distance_profile(attention_maps(model, random_ids(lengths, 7)))
    assert profile[0, 0].argmax() == 2 and profile[0, 0, 2] > 0.999
    assert np.nansum(np.delete(profile[0, 0], 2)) < 0.05  # only query 1 (which cannot reach d = 2) spreads
    # head 2 is a uniform causal average: query i puts 1/(i+1) on each key
    total, count = np.zeros(32), np.zeros(32)
    for n in lengths:
        for i in range(1, n):
            count[: i + 1] += 1
            total[: i + 1] += 1.0 / (i + 1)
    np.testing.assert_allclose(profile[0, 1], total / count, atol=1e-6)


def one_hot_maps(lengths: list[int], pick) -> list[np.ndarray]:
    """[1, 1, n, n] maps: query i (>= 1) puts all weight on key pick(i); <bos> on itself."""
    maps = []
    for n in lengths:
        w = np.zeros((1, 1, n, n), dtype=np.float32)
        w[0, 0, 0, 0] = 1.0
        for i in range(1, n):
            w[0, 0, i, pick(i)] = 1.0
        maps.append(w)
    return maps


def test_share_explained_by_distance() -> None:
    lengths = [12, 7]
    previous = one_hot_maps(lengths, lambda i: i - 1)  # purely positional: always d = 1
    assert distance_share(previous, distance_profile(previous))[0, 0] == pytest.approx(1.0)
    # alternate d = 1 and d = 2 (query 1 can only do d = 1): against the profile, every row is off by its TV
    mixed = one_hot_maps(lengths, lambda i: i - 1 if i % 2 or i == 1 else i - 2)
    profile = distance_profile(mixed)
    tv = []
    for w in mixed:
        n = w.shape[-1]
        for i in range(1, n):
            q = np.nan_to_num(profile[0, 0, : i + 1])
            q = q / q.sum()
            row = np.array([w[0, 0, i, i - d] for d in range(i + 1)])
            tv.append(0.5 * np.abs(row - q).sum())
    share = distance_share(mixed, profile)[0, 0]
    assert share == pytest.approx(1 - np.mean(tv))
    assert 0.3 < share < 0.8


# ----------------------------------------------------------------------------------- boundary statistics


def test_previous_end() -> None:
    assert previous_end([0, 1, 0, 0, 1, 1]).tolist() == [-1, -1, 1, 1, 1, 4]
    assert previous_end([]).tolist() == []


def test_boundary_stats_by_hand() -> None:
    # labels b = 0 1 0 0 1 (model positions 1..5). The end query at label 4 attends fully to the previous end
    # (label 1 = model 2); every other query attends to <bos>.
    b = [0, 1, 0, 0, 1]
    w = np.zeros((1, 1, 6, 6), dtype=np.float32)
    for q in range(6):
        w[0, 0, q, 0] = 1.0
    w[0, 0, 5, :] = 0.0
    w[0, 0, 5, 2] = 1.0
    stats = boundary_stats([w], [[b]])
    # profile: queries 1..5 put weight at d = 1, 2, 3, 4 (on <bos>) and 3 (label 4 -> label 1); queries with
    # i >= d: 5, 4, 3, 2, 1 for d = 1..5  ->  P = [0, 1/5, 1/4, 2/3, 1/2, 0]
    np.testing.assert_allclose(stats.profile[0, 0], [0, 1 / 5, 1 / 4, 2 / 3, 1 / 2, 0], atol=1e-7)
    end, non_end = KINDS.index("end"), KINDS.index("non_end")
    # end queries: label 1 has no previous end (skipped), label 4 -> label 1 at distance 3
    assert stats.queries[0, 0, end] == 1
    assert stats.mass[0, 0, 0, 0, end] == pytest.approx(1.0)
    assert stats.expected[0, 0, 0, 0, end] == pytest.approx(2 / 3)
    assert stats.lift[0, 0, 0, 0, end] == pytest.approx(1.5)
    # non-end queries: label 0 skipped, labels 2 and 3 -> label 1 at distances 1 and 2, weight 0 there
    assert stats.queries[0, 0, non_end] == 2
    assert stats.mass[0, 0, 0, 0, non_end] == 0.0
    assert stats.expected[0, 0, 0, 0, non_end] == pytest.approx((1 / 5 + 1 / 4) / 2)
    assert stats.lift[0, 0, 0, 0, non_end] == 0.0
    # one sentence: its mean map is the map itself, so the position baseline equals the mass
    assert stats.expected_position[0, 0, 0, 0, end] == pytest.approx(1.0)
    assert stats.lift_position[0, 0, 0, 0, end] == pytest.approx(1.0)
    assert stats.expected_position[0, 0, 0, 0, non_end] == 0.0 and np.isnan(stats.lift_position[0, 0, 0, 0, non_end])


class BoundarySeeker(torch.nn.Module):
    """A fake model whose head h sends every level-h NT-end query to the previous level-h NT-end (all other
    queries to <bos>). Token ids carry the labels: id = 2 + b_1 + 2 b_2 (the pad id 1 carries none)."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def attention_weights(self, idx: torch.Tensor) -> torch.Tensor:
        B, T = idx.shape
        w = torch.zeros(1, B, 2, T, T)
        for b in range(B):
            labels = [((idx[b] - 2) >> h) & 1 for h in range(2)]
            for h in range(2):
                ends = (idx[b] >= 2) & (labels[h] == 1)
                ends[0] = False
                for i in range(T):
                    prev = [j for j in range(1, i) if ends[j]]
                    w[0, b, h, i, prev[-1] if ends[i] and prev else 0] = 1.0
        return w


def encode_labels(boundaries: list[list[int]]) -> np.ndarray:
    b1, b2 = (np.asarray(level) for level in boundaries)
    return np.concatenate([[0], 2 + b1 + 2 * b2])


def reference(maps: list[np.ndarray], boundaries) -> tuple[np.ndarray, ...]:
    """Loop-by-loop profile [L, H, D], mass, expected and expected_position [L, H, levels, levels, 2]."""
    L, H = maps[0].shape[:2]
    D = max(w.shape[-1] for w in maps)
    levels = len(boundaries[0])
    total, count = np.zeros((L, H, D)), np.zeros(D)
    for w in maps:
        n = w.shape[-1]
        for i in range(1, n):
            for d in range(i + 1):
                count[d] += 1
                total[:, :, d] += w[:, :, i, i - d]
    profile = total / np.maximum(count, 1)
    mean_map, rows = np.zeros((L, H, D, D)), np.zeros(D)
    for w in maps:
        n = w.shape[-1]
        mean_map[:, :, :n, :n] += w
        rows[:n] += 1
    mean_map /= np.maximum(rows, 1)[:, None]
    by_position = np.zeros((L, H, levels, levels, 2))
    mass, expected = np.zeros((L, H, levels, levels, 2)), np.zeros((L, H, levels, levels, 2))
    queries = np.zeros((levels, levels, 2))
    for w, sent in zip(maps, boundaries):
        for lq in range(levels):
            for lk in range(levels):
                for i in range(len(sent[lq])):
                    prev = [j for j in range(i) if sent[lk][j] == 1]
                    if not prev:
                        continue
                    kind = 0 if sent[lq][i] == 1 else 1
                    j = prev[-1]
                    mass[:, :, lq, lk, kind] += w[:, :, i + 1, j + 1]
                    expected[:, :, lq, lk, kind] += profile[:, :, i - j]
                    by_position[:, :, lq, lk, kind] += mean_map[:, :, i + 1, j + 1]
                    queries[lq, lk, kind] += 1
    return profile, mass / queries, expected / queries, by_position / queries


def random_tree_labels(lengths: list[int], seed: int) -> list[list[list[int]]]:
    """Nested boundaries: level-1 ends are also level-2 ends (as in a parse tree), the last token ends both."""
    rng = np.random.default_rng(seed)
    out = []
    for m in lengths:
        b2 = (rng.random(m) < 0.4).astype(int)
        b1 = b2 * (rng.random(m) < 0.5)
        b1[-1] = b2[-1] = 1
        out.append([b1.tolist(), b2.tolist()])
    return out


def test_boundary_seeking_model_end_to_end() -> None:
    labels = random_tree_labels([14, 9, 20, 11, 5], seed=1)
    sequences = [encode_labels(sent) for sent in labels]
    model = BoundarySeeker()
    analysis = analyze_attention(model, sequences, labels, batch_size=2)  # right padding with id 1
    stats = analysis.boundary
    end = KINDS.index("end")
    for h in range(2):
        assert stats.mass[0, h, h, h, end] == pytest.approx(1.0)  # head h+1: level h+1 ends -> previous one
        assert stats.lift[0, h, h, h, end] > 1.5
    maps = list(attention_maps(model, sequences, batch_size=5))
    profile, mass, expected, by_position = reference(maps, labels)
    np.testing.assert_allclose(stats.profile, profile, atol=1e-6)
    np.testing.assert_allclose(stats.mass, mass, atol=1e-6)
    np.testing.assert_allclose(stats.expected, expected, atol=1e-6)
    np.testing.assert_allclose(stats.lift, mass / expected, atol=1e-5)
    np.testing.assert_allclose(stats.expected_position, by_position, atol=1e-6)
    np.testing.assert_allclose(stats.lift_position, mass / by_position, atol=1e-5)


def test_boundary_stats_match_the_reference_on_random_maps() -> None:
    rng = np.random.default_rng(3)
    lengths = [10, 17, 6]
    labels = random_tree_labels([n - 1 for n in lengths], seed=4)
    maps = []
    for n in lengths:
        w = rng.dirichlet(np.ones(n), size=(2, 3, n)).astype(np.float32) * np.tri(n)  # causal, renormalised
        maps.append(w / w.sum(-1, keepdims=True))
    analysis = analyze_maps(lambda: iter(maps), labels)
    profile, mass, expected, by_position = reference(maps, labels)
    np.testing.assert_allclose(analysis.profile, profile, atol=1e-6)
    np.testing.assert_allclose(analysis.boundary.mass, mass, atol=1e-6)
    np.testing.assert_allclose(analysis.boundary.expected, expected, atol=1e-6)
    np.testing.assert_allclose(analysis.boundary.expected_position, by_position, atol=1e-6)
    assert analysis.share.shape == (2, 3) and ((analysis.share > 0) & (analysis.share <= 1)).all()
    per_distance = [sum(n - 1 for n in lengths)] + [sum(max(n - d, 0) for n in lengths) for d in range(1, 17)]
    assert analysis.queries.tolist() == per_distance  # queries i in 1..n-1 with i >= d


@pytest.mark.parametrize("pos", ["uni", "pos"])
def test_content_free_heads_have_position_lift_one(pos: str) -> None:
    torch.manual_seed(0)
    grammar, (sequences, labels) = small_grammar_inputs(6, context=40)
    model = GPT(GPTConfig(vocab_size=len(grammar.terminals) + 2, context=40, depth=1, width=12, heads=3, pos=pos))
    stats = analyze_attention(model, sequences, labels, batch_size=4).boundary
    defined = np.isfinite(stats.lift_position)
    assert defined.any()
    np.testing.assert_allclose(stats.lift_position[defined], 1.0, atol=1e-5)
    if pos == "pos":  # zero logits: a uniform causal average, which the distance baseline rates below 1
        assert np.nanmax(stats.lift) < 1.0


def test_labels_must_match_the_maps() -> None:
    w = np.full((1, 1, 4, 4), 0.25, dtype=np.float32)
    with pytest.raises(ValueError, match="3 tokens"):
        boundary_stats([w], [[[0, 1, 0, 1]]])  # 4 labels for <bos> + 3 tokens
    with pytest.raises(ValueError):
        boundary_stats([w, w], [[[0, 0, 1]]])  # one label set for two maps


# ------------------------------------------------------------------------------------- rows, figures, GPT


def small_grammar_inputs(count: int, context: int):
    grammar = cfg.random_grammar(seed=3, symbols_per_level=[1, 3, 3, 4], rules_per_symbol=(2, 2), rule_length=(2, 3))
    sentences = cfg.sample_sentences(grammar, seed=0, start=0, count=count)
    tokens = [s.tokens for s in sentences]
    return grammar, cfg_inputs(tokens, [s.boundaries for s in sentences], context)


def test_cfg_inputs_align_labels_with_bos() -> None:
    grammar, (sequences, labels) = small_grammar_inputs(3, context=10)
    for seq, sent in zip(sequences, labels):
        assert seq[0] == 0 and 2 <= seq[1:].min() and len(seq) <= 10
        assert len(sent) == grammar.depth - 1 and all(len(level) == len(seq) - 1 for level in sent)


def test_real_gpt_rows_summary_and_figures(tmp_path) -> None:
    torch.manual_seed(0)
    grammar, (sequences, labels) = small_grammar_inputs(8, context=64)
    model = GPT(GPTConfig(vocab_size=len(grammar.terminals) + 2, context=64, depth=2, width=16, heads=2))
    model.train()
    analysis = analyze_attention(model, sequences, labels, batch_size=3)
    assert model.training  # restored
    single = analyze_attention(model, sequences, labels, batch_size=1)  # padding changes nothing
    np.testing.assert_allclose(analysis.profile, single.profile, atol=1e-5)
    np.testing.assert_allclose(analysis.boundary.mass, single.boundary.mass, atol=1e-5)
    # every query row sums to 1: the profile times its query counts adds up to the number of queries
    reached = np.nan_to_num(analysis.profile) * analysis.queries
    np.testing.assert_allclose(reached.sum(-1), sum(len(s) - 1 for s in sequences), rtol=1e-5)
    levels = grammar.depth - 1
    assert analysis.boundary.mass.shape == (2, 2, levels, levels, 2)

    drows, brows = distance_rows(analysis, max_distance=20), boundary_rows(analysis.boundary)
    longest = max(len(s) for s in sequences)  # rows stop at the longest distance any sequence has
    assert len(drows) == 2 * 2 * min(21, longest) and len(brows) == 2 * 2 * 2 * levels * levels
    assert set(drows[0]) == {"layer", "head", "distance", "weight", "queries", "share"}
    assert set(brows[0]) == {"layer", "head", "query", "query_level", "key_level", "mass", "expected", "lift",
                             "expected_position", "lift_position", "queries"}
    assert all(type(v) in (int, float, str) for r in drows + brows for v in r.values())
    summary = summarize(drows, brows)
    assert [e["layer"] for e in summary["layers"]] == [1, 2]
    assert set(summary["layers"][0]) == {"layer", "distance_share"} | {
        f"{c}_{s}_{k}" for c in ("lift", "lift_position") for s in ("same_level", "best_head") for k in KINDS}
    assert set(summary) == {"layers", "distance_share"} | {
        f"{c}_same_level_{k}{x}" for c in ("lift", "lift_position") for k in KINDS for x in ("", "_layer")}
    assert 0 < summary["distance_share"] <= 1 and summary["lift_same_level_end"] > 0
    assert summary["lift_same_level_end_layer"] in (1, 2)

    # figures from the rows, and redrawn from the CSVs read back (string cells)
    write_csv(tmp_path / "d.csv", drows)
    write_csv(tmp_path / "b.csv", brows)
    read = {name: list(csv.DictReader((tmp_path / f"{name}.csv").open())) for name in ("d", "b")}
    for name, rows_d, rows_b in (("live", drows, brows), ("csv", read["d"], read["b"])):
        plot_distance(rows_d, tmp_path / f"{name}_distance.png", max_distance=16)
        plot_boundary(rows_b, tmp_path / f"{name}_boundary.png")
        plot_boundary(rows_b, tmp_path / f"{name}_boundary_mean.png", reduce="mean", baseline="position")
        for png in ("distance", "boundary", "boundary_mean"):
            data = (tmp_path / f"{name}_{png}.png").read_bytes()
            assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    assert summarize(read["d"], read["b"]) == summary
