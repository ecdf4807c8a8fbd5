"""Diversity of generated strings by collision counting (SPEC 1.3 "Diversity").

Part 1 shows that a model trained on a CFG does not just memorise a small set of strings: it estimates the
support size / entropy of what the model generates (whole strings, and the subtrees at each NT level) by
counting collisions (the birthday paradox) and compares it with the grammar's own samples. The exact
protocol is UNVERIFIED in the SPEC; this module provides the estimators.

* ``collision_entropy`` - the unbiased collision probability C = sum_x p_x^2 (equal pairs / (n choose 2)),
  the Renyi-2 entropy H2 = -log C (a lower bound on the Shannon entropy) and the effective support 1/C, with
  the standard error of the U-statistic (Hoeffding's variance, its two components estimated without bias and
  clamped at 0) and a normal confidence interval. With zero collisions there is no value, only the
  birthday-paradox bound H2 >= log(n choose 2), flagged ``is_lower_bound``.
* ``chao_shen_entropy`` - a Shannon entropy estimate (Chao & Shen 2003, coverage-adjusted Horvitz-Thompson)
  that stays usable when most samples are seen only once.
* ``subtree_spans`` / ``subtree_samples`` / ``subtree_diversity`` - the terminal strings yielded by the
  level-l subtrees of labelled sentences (``Sentence.ancestors`` / ``boundaries``), grouped per NT symbol.
  Model-generated strings carry no labels: `subtree_diversity_compare` parses them (and, for equal
  treatment, the grammar's own samples) with the canonical parse of `physlm.worlds.cfg.parse` (the cfg3
  grammars are ambiguous: the statistics describe that parse) and compares the two per NT level and symbol.
* ``compare`` - model and reference estimates side by side.

``tests/test_diversity.py`` checks the estimators on distributions of known C and entropy (uniform over K,
geometric, Zipf), exact unbiasedness of C and of its variance estimate by enumerating every sample of a tiny
distribution, the calibration of the standard error over repeated draws, the zero-collision bound and the
all-identical case; and ``subtree_samples`` on hand-built sentences and sampled cfg3b sentences (subtrees
concatenate back to the sentence, and every subtree string of A is derivable from A).

This module never imports torch.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist

from physlm.worlds.cfg.grammar import Grammar, Sentence

__all__ = [
    "Estimate",
    "collision_entropy",
    "chao_shen_entropy",
    "subtree_spans",
    "subtree_samples",
    "subtree_diversity",
    "subtree_diversity_compare",
    "compare",
]


@dataclass(frozen=True)
class Estimate:
    """Collision-count estimate of the diversity of one sample (entropies in nats).

    ``collision_prob`` is unbiased for C = sum_x p_x^2 and ``stderr`` is its standard error. When
    ``is_lower_bound`` (no collision seen) ``renyi2_nats`` = log(pairs) and ``support`` = pairs are
    birthday-paradox bounds, not values: the sample is too small to resolve C < 1/pairs. ``renyi2_ci`` is a
    two-sided interval for H2 at ``confidence`` (its upper end is inf when the interval for C reaches 0); in
    the bound case it is the one-sided (log(pairs / ln(1/alpha)), inf), exact for uniform distributions,
    where P(no collision) <= exp(-pairs * C), and optimistic for distributions with one heavy atom.
    For a distribution (near-)uniform over a few items the statistic is degenerate (not normal) and the
    stderr errs on the large side; for the large supports of string diversity it is calibrated (tested).
    """

    n: int
    pairs: int
    collisions: int
    collision_prob: float
    stderr: float
    renyi2_nats: float
    renyi2_stderr: float
    renyi2_ci: tuple[float, float]
    support: float
    is_lower_bound: bool
    confidence: float


def _key(sample: object) -> Hashable:
    """Lists and arrays (token strings) become tuples so they can be counted."""
    if hasattr(sample, "tolist"):
        sample = sample.tolist()
    if isinstance(sample, list):
        return tuple(sample)
    return sample  # type: ignore[return-value]


def _counts(samples: Iterable[object]) -> list[int]:
    return list(Counter(_key(s) for s in samples).values())


def _falling(n: int, k: int) -> int:
    """n (n-1) ... (n-k+1)."""
    return math.perm(n, k) if n >= k else 0


def _zetas(counts: Sequence[int], n: int) -> tuple[float, float]:
    """Unbiased estimates of Hoeffding's zeta1 = sum p^3 - C^2 and zeta2 = C - C^2 (needs n >= 4).

    Var(C-hat) = [2(n-2) zeta1 + zeta2] / (n choose 2) for the order-2 U-statistic with kernel 1[x = y].
    sum p^3, C and C^2 = sum_x p_x^4 + sum_{x != y} p_x^2 p_y^2 are estimated without bias from the falling
    factorial moments of the multinomial counts. Being unbiased, either estimate can come out negative.
    """
    pair = [c * (c - 1) for c in counts]
    c_hat = sum(pair) / _falling(n, 2)
    p3_hat = sum(c * (c - 1) * (c - 2) for c in counts) / _falling(n, 3)
    quad = sum(c * (c - 1) * (c - 2) * (c - 3) for c in counts) + sum(pair) ** 2 - sum(q * q for q in pair)
    c2_hat = quad / _falling(n, 4)
    return p3_hat - c2_hat, c_hat - c2_hat


def _variance(counts: Sequence[int], n: int, *, clamp: bool = True) -> float:
    """Estimated Var(C-hat). Unbiased with ``clamp=False``; by default each zeta (a variance, so >= 0) is
    clamped at 0 first, which keeps the estimate positive where zeta1 is ~0 (near-uniform distributions, whose
    zeta1 estimate is pure noise) at the price of a slight upward bias."""
    zeta1, zeta2 = _zetas(counts, n)
    if clamp:
        zeta1, zeta2 = max(zeta1, 0.0), max(zeta2, 0.0)
    return (2 * (n - 2) * zeta1 + zeta2) / math.comb(n, 2)


def collision_entropy(samples: Sequence[Hashable], *, confidence: float = 0.95) -> Estimate:
    """Collision probability, Renyi-2 entropy and effective support of ``samples`` (i.i.d. draws).

    Samples are compared by equality (lists and arrays as tuples). Needs at least 2 samples; the standard
    error needs 4 (nan below). The interval is normal on C (rough when there are fewer than ~10 collisions).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence} must be in (0, 1)")
    counts = _counts(samples)
    n = sum(counts)
    if n < 2:
        raise ValueError(f"collision_entropy needs at least 2 samples, got {n}")
    pairs = math.comb(n, 2)
    collisions = sum(math.comb(c, 2) for c in counts)
    if collisions == 0:
        return _bound(n, pairs, confidence)
    c_hat = collisions / pairs
    stderr = math.sqrt(_variance(counts, n)) if n >= 4 else math.nan
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    lo, hi = c_hat - z * stderr, min(1.0, c_hat + z * stderr)
    return Estimate(n=n, pairs=pairs, collisions=collisions, collision_prob=c_hat, stderr=stderr,
                    renyi2_nats=-math.log(c_hat), renyi2_stderr=stderr / c_hat,
                    renyi2_ci=(-math.log(hi), -math.log(lo) if lo > 0 else math.inf),
                    support=1 / c_hat, is_lower_bound=False, confidence=confidence)


def _bound(n: int, pairs: int, confidence: float) -> Estimate:
    """No collision: H2 >= log(pairs) (birthday-paradox resolution) and a one-sided interval."""
    c_upper = min(1.0, -math.log(1 - confidence) / pairs)
    return Estimate(n=n, pairs=pairs, collisions=0, collision_prob=0.0, stderr=math.nan,
                    renyi2_nats=math.log(pairs), renyi2_stderr=math.nan, renyi2_ci=(-math.log(c_upper), math.inf),
                    support=float(pairs), is_lower_bound=True, confidence=confidence)


def chao_shen_entropy(samples: Sequence[Hashable]) -> float:
    """Chao-Shen estimate of the Shannon entropy (nats): coverage-adjusted probabilities, Horvitz-Thompson sum.

    Coverage is 1 - f1/n (f1 = number of singletons; f1 = n is replaced by n - 1 as in the original). Much
    less biased than the plug-in entropy when many items are seen once, but still biased low when the
    sample covers little of the distribution; with no collisions at all it only says "large".
    """
    counts = _counts(samples)
    n = sum(counts)
    if n < 2:
        raise ValueError(f"chao_shen_entropy needs at least 2 samples, got {n}")
    singletons = sum(1 for c in counts if c == 1)
    coverage = 1 - min(singletons, n - 1) / n
    total = 0.0
    for c in counts:
        p = coverage * c / n
        total -= p * math.log(p) / (1 - (1 - p) ** n)
    return total


# ------------------------------------------------------------------------------------------- subtrees


def _level_rows(sentence: Sentence, level: int) -> tuple[list[int], list[int]]:
    depth = len(sentence.ancestors)
    if not 1 <= level <= depth:
        raise ValueError(f"level {level} outside the sentence's NT levels 1..{depth}")
    ancestors, boundaries = sentence.ancestors[level - 1], sentence.boundaries[level - 1]
    if not len(ancestors) == len(boundaries) == len(sentence.tokens):
        raise ValueError(f"level {level} labels do not have one entry per token ({len(sentence.tokens)})")
    return ancestors, boundaries


def subtree_spans(sentence: Sentence, level: int) -> list[tuple[int, tuple[int, ...]]]:
    """The level-``level`` subtrees of a labelled sentence, left to right, as (NT symbol, terminal string).

    A subtree ends where ``boundaries[level-1]`` is 1; its symbol is the ``ancestors[level-1]`` label, which
    must be constant over the subtree, and the last token must end a subtree (else ValueError).
    """
    ancestors, boundaries = _level_rows(sentence, level)
    spans: list[tuple[int, tuple[int, ...]]] = []
    start = 0
    for i, end in enumerate(boundaries):
        if ancestors[i] != ancestors[start]:
            raise ValueError(f"level {level}: ancestor changes at token {i} without a boundary before it")
        if end:
            spans.append((ancestors[start], tuple(sentence.tokens[start : i + 1])))
            start = i + 1
    if start != len(boundaries):
        raise ValueError(f"level {level}: the last token does not end a subtree")
    return spans


def subtree_samples(sentences: Sequence[Sentence], level: int) -> dict[int, list[tuple[int, ...]]]:
    """For each level-``level`` NT symbol, the terminal strings of all its subtrees in ``sentences``.

    Needs the sampler's labels; for unlabelled (model-generated) strings see the module docstring.
    """
    out: dict[int, list[tuple[int, ...]]] = defaultdict(list)
    for sentence in sentences:
        for symbol, string in subtree_spans(sentence, level):
            out[symbol].append(string)
    return dict(sorted(out.items()))


def subtree_diversity(sentences: Sequence[Sentence], level: int, *, confidence: float = 0.95) -> dict[int, Estimate]:
    """``collision_entropy`` of each level-``level`` NT's subtree strings (symbols seen at least twice)."""
    return {symbol: collision_entropy(strings, confidence=confidence)
            for symbol, strings in subtree_samples(sentences, level).items() if len(strings) >= 2}


# -------------------------------------------------------------------------------------------- compare


def _gap_kind(model: Estimate, reference: Estimate) -> str:
    if model.is_lower_bound and reference.is_lower_bound:
        return "undetermined"
    if model.is_lower_bound:
        return "at_most"  # the model's H2 is at least its bound, so the gap is at most the reported one
    if reference.is_lower_bound:
        return "at_least"
    return "value"


def compare(model_samples: Sequence[Hashable], reference_samples: Sequence[Hashable], *,
            confidence: float = 0.95) -> dict:
    """Model vs reference (the grammar's own samples) diversity, side by side.

    ``renyi2_gap_nats`` = H2(reference) - H2(model): positive means the model's output is less diverse.
    ``gap_kind`` says whether it is a value or a bound ("at_most" / "at_least" / "undetermined") when a side
    had no collision; ``gap_z`` is the gap over its delta-method standard error (only for a value). Compare
    samples of similar size: with zero collisions the bound grows with n.
    """
    model = collision_entropy(model_samples, confidence=confidence)
    reference = collision_entropy(reference_samples, confidence=confidence)
    gap = reference.renyi2_nats - model.renyi2_nats
    kind = _gap_kind(model, reference)
    gap_stderr = math.hypot(model.renyi2_stderr, reference.renyi2_stderr) if kind == "value" else math.nan
    return {
        "model": asdict(model),
        "reference": asdict(reference),
        "renyi2_gap_nats": gap,
        "gap_kind": kind,
        "gap_stderr": gap_stderr,
        "gap_z": gap / gap_stderr if gap_stderr > 0 else math.nan,
        "support_ratio": model.support / reference.support,
        "chao_shen_nats": {"model": chao_shen_entropy(model_samples),
                           "reference": chao_shen_entropy(reference_samples)},
    }


# ------------------------------------------------------------------------------- subtrees of model strings

_KEEP = ("n", "collisions", "renyi2_nats", "support", "is_lower_bound")  # the fields evaluate.diversity keeps


def _kept(samples: Sequence[Hashable]) -> dict:
    found = asdict(collision_entropy(samples))
    return {k: found[k] for k in _KEEP}


def subtree_diversity_compare(model_strings: Sequence[Sequence[int] | None], reference_strings: Sequence[Sequence[int]],
                              g: Grammar, levels: Sequence[int] | None = None) -> dict:
    """Per-NT-level subtree diversity of model-generated strings against the grammar's own samples.

    Both lists are parsed with ``physlm.worlds.cfg.parse.parse`` (the grammar ``g``'s canonical parse; the
    reference strings are re-parsed too rather than using the sampler's labels, so that both sides go through
    the same tie-breaking on ambiguous strings). Model strings that do not parse (and None entries) are skipped
    and counted in ``unparsable``; a reference string that does not parse is an error (ValueError).

    For each level l in ``levels`` (default: every NT level 1..D-1), ``"level l"`` holds:

    * ``per_symbol[str(A)]``: ``{"model": ..., "grammar": ...}``, the collision estimates (``collision_entropy``;
      fields n, collisions, renyi2_nats, support, is_lower_bound) of the terminal strings of A's subtrees.
      Sample sizes are equalised: both sides keep their first m subtree strings of A (in string order, left to
      right), m = the smaller of the two counts, so the estimates, and the zero-collision bounds, are directly
      comparable. Symbols with m < 2 are left out.
    * ``model`` / ``grammar``: the same over the level's subtrees pooled across symbols, a subtree being the
      pair (A, terminal string); the pool is the union of the equalised per-symbol samples, so both sides have
      the same n and the same mix of symbols, and the comparison reflects diversity within symbols, not
      differing symbol frequencies. None when fewer than 2 subtrees are pooled.
    * ``subtrees``: ``{"model": count, "grammar": count}``, all level-l subtrees before equalising.

    Top-level keys ``parsed`` / ``unparsable`` / ``reference`` count the model strings parsed, the model
    strings skipped and the reference strings. Values are plain ints, floats, bools and str keys (JSON-ready).
    """
    from physlm.worlds.cfg.parse import parse_many

    model_list = list(model_strings)
    model_parsed = [s for s in parse_many(g, [m for m in model_list if m is not None]) if s is not None]
    reference_list = [getattr(r, "tokens", r) for r in reference_strings]
    reference_parsed = parse_many(g, reference_list)
    for index, sentence in enumerate(reference_parsed):
        if sentence is None:
            raise ValueError(f"reference string {index} is not derivable from grammar {g.name!r}")
    depth = g.depth
    chosen = list(range(1, depth)) if levels is None else [int(level) for level in levels]
    for level in chosen:
        if not 1 <= level < depth:
            raise ValueError(f"level {level} outside the grammar's NT levels 1..{depth - 1}")
    out: dict = {"parsed": len(model_parsed), "unparsable": len(model_list) - len(model_parsed),
                 "reference": len(reference_parsed)}
    for level in chosen:
        model_sub = subtree_samples(model_parsed, level) if model_parsed else {}
        grammar_sub = subtree_samples(reference_parsed, level) if reference_parsed else {}
        per_symbol: dict[str, dict] = {}
        pooled_model: list[tuple[int, tuple[int, ...]]] = []
        pooled_grammar: list[tuple[int, tuple[int, ...]]] = []
        for symbol in sorted(set(model_sub) | set(grammar_sub)):
            ours, theirs = model_sub.get(symbol, []), grammar_sub.get(symbol, [])
            m = min(len(ours), len(theirs))
            pooled_model.extend((symbol, s) for s in ours[:m])
            pooled_grammar.extend((symbol, s) for s in theirs[:m])
            if m >= 2:
                per_symbol[str(symbol)] = {"model": _kept(ours[:m]), "grammar": _kept(theirs[:m])}
        enough = len(pooled_model) >= 2
        out[f"level {level}"] = {
            "model": _kept(pooled_model) if enough else None,
            "grammar": _kept(pooled_grammar) if enough else None,
            "per_symbol": per_symbol,
            "subtrees": {"model": sum(map(len, model_sub.values())), "grammar": sum(map(len, grammar_sub.values()))},
        }
    return out


