"""Part 3.3's bit formula (physlm/worlds/capacity/bits.py) against known answers, each computed here by hand in
another form (products and powers, not the module's sums of logs)."""

from __future__ import annotations

import math

import pytest

from physlm.worlds.capacity.bits import capacity_bound, ratio, stored_bits, upper_bound

SPEC = {"N0": 400 * 400 * 1000, "N": 1000, "K": 4, "C": 3, "D": 50, "L": 2, "T": 20}


def test_perfect_losses_give_the_no_error_upper_bound() -> None:
    """p1 = ln N (the name is one of the N people), p2 = p3 = 0: N log2(N0/N) + N K C log2 D + K D log2(T^L / D)."""
    N0, N, K, C, D, L, T = (SPEC[k] for k in ("N0", "N", "K", "C", "D", "L", "T"))
    by_hand = N * math.log2(N0 / N) + N * K * math.log2(D**C) + K * D * math.log2(T**L / D)
    perfect = stored_bits(math.log(N), 0.0, 0.0, **SPEC)
    assert perfect.total == pytest.approx(by_hand, rel=1e-12)
    assert upper_bound(**SPEC).total == pytest.approx(by_hand, rel=1e-12)
    assert perfect.name == pytest.approx(N * math.log2(160_000), rel=1e-12)  # 400 x 400 x 1000 / 1000


def test_each_term_is_zero_for_a_predictor_that_stores_nothing_of_it() -> None:
    """Uniform over all N0 names: no name bits; uniform over the D-set: no value bits; e^p3 = T^L / D: no set bits."""
    N0, C, D, L, T = SPEC["N0"], SPEC["C"], SPEC["D"], SPEC["L"], SPEC["T"]
    nothing = stored_bits(math.log(N0), C * math.log(D), math.log(T**L / D), **SPEC)
    assert nothing.name == pytest.approx(0, abs=1e-6) and nothing.value == pytest.approx(0, abs=1e-6)
    assert nothing.diversity == pytest.approx(0, abs=1e-6) and nothing.total == pytest.approx(0, abs=1e-6)


def test_a_predictor_uniform_over_every_chunk_stores_negative_bits() -> None:
    """Not even the sets known (p2 = C L ln T, p3 = L ln T): the lower bound goes negative, by exactly
    N K C log2(T^L / D) and K D log2 D; it is not clamped."""
    N, K, C, D, L, T = (SPEC[k] for k in ("N", "K", "C", "D", "L", "T"))
    blind = stored_bits(math.log(SPEC["N0"]), C * L * math.log(T), L * math.log(T), **SPEC)
    assert blind.value == pytest.approx(-N * K * C * math.log2(T**L / D), rel=1e-12)
    assert blind.diversity == pytest.approx(-K * D * math.log2(D), rel=1e-12)
    assert blind.total < 0


def test_a_nat_of_loss_costs_one_over_ln2_bits_per_item() -> None:
    base = stored_bits(1.0, 2.0, 0.5, **SPEC)
    worse = stored_bits(2.0, 3.0, 1.5, **SPEC)
    assert base.name - worse.name == pytest.approx(SPEC["N"] / math.log(2))
    assert base.value - worse.value == pytest.approx(SPEC["N"] * SPEC["K"] / math.log(2))
    assert base.diversity - worse.diversity == pytest.approx(SPEC["K"] * SPEC["D"] / math.log(2))


def test_no_overflow_at_the_papers_largest_ranges() -> None:
    """T^L = 40000^50 is far beyond a float; the terms stay finite."""
    big = {"N0": 160_000_000, "N": 10_000, "K": 50, "C": 50, "D": 10_000, "L": 50, "T": 40_000}
    assert math.isfinite(upper_bound(**big).total)
    assert upper_bound(**big).diversity == pytest.approx(50 * 10_000 * (50 * math.log2(40_000) - math.log2(10_000)))


def test_ratio_and_capacity_bound() -> None:
    assert ratio(3000.0, 1500) == 2.0
    assert capacity_bound(3001.0, 1500) and not capacity_bound(3000.0, 1500) and not capacity_bound(100.0, 1500)
    with pytest.raises(ValueError, match="positive"):
        ratio(1.0, 0)


@pytest.mark.parametrize("bad", [{"N": 10**9}, {"D": 401}, {"K": 0}])
def test_bad_specs_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError, match="not a bioD spec"):
        stored_bits(0.0, 0.0, 0.0, **(SPEC | bad))
