"""Part 3.3's bit-complexity lower bound and capacity ratio (SPEC 6.2), torch-free and in plain floats: bioD's, and
bioS's (below).

For bioD(N, K, C, D, L, T) with N0 candidate names, and a model's losses (natural log, each *summed* over the
tokens it covers, averaged over people or person-attributes): p1 the name's loss when the name is generated,
p2 the loss of all C x L value tokens of an attribute given the name and the attribute, p3 that of the first
chunk's L tokens only, the bits the model provably stores are

    bits = N log2(N0 / e^p1)  +  N K log2(D^C / e^p2)  +  K D log2(T^L / (D e^p3))
           (name term)           (value term)              (diversity term)

and the capacity ratio R(F) = bits / P for P parameters. Every log is taken apart (L log2 T, not log2 T^L), so
no power overflows. Known answers (tests/test_capacity_bits.py):
- the best possible losses, p1 = ln N (a name is one of the N known ones, each equally likely), p2 = p3 = 0,
  give the data's own bits, the no-error upper bound N log2(N0/N) + N K C log2 D + K D log2(T^L / D)
  (`upper_bound`);
- each term is zero at the loss of a predictor that stores nothing for it: p1 = ln N0 (uniform over every
  candidate name), p2 = C ln D (uniform over the attribute's diversity set: the set is known, the person's
  value is not), p3 = ln(T^L / D);
- a predictor uniform over all T^L chunks (p2 = C L ln T, p3 = L ln T: knows not even the sets) makes the value
  term -N K C log2(T^L / D) and the diversity term -K D log2 D: the bound is a lower bound and goes negative
  when the losses are worse than "knows nothing"; physlm reports it as it is, never clamped.

For bioS(N) and bioS^simple(N) (SPEC 6.2) the diversity term is dropped (0 here), and the value term counts the
S0 attribute combinations a person can have: p2 is the loss of every value token of a person's paragraph (and of
its first pronoun, whose gender S0 counts), summed per person, averaged over people:

    bits = N log2(N0 / e^p1)  +  N log2(S0 / e^p2)

(`bios_stored_bits`); the best losses, p1 = ln N and p2 = 0, give the upper bound N log2(N0 / N) + N log2 S0
(`bios_upper_bound`), and a predictor that knows nothing of the values, uniform over the S0 combinations
(p2 = ln S0), stores no value bits.

A point is capacity-bound only when the data holds more bits than 2P (SPEC 11.2 item 2): with fewer, even a
perfect model cannot reach 2 bits per parameter.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

LN2 = math.log(2.0)
PEAK = 2.0  # bits per parameter at 1000 exposures (P3.3-a): the capacity-bound threshold


@dataclass(frozen=True)
class Bits:
    name: float
    value: float
    diversity: float

    @property
    def total(self) -> float:
        return self.name + self.value + self.diversity

    def as_dict(self) -> dict[str, float]:
        return asdict(self) | {"total": self.total}


def _check(N0: int, N: int, K: int, C: int, D: int, L: int, T: int) -> None:
    if min(N0, N, K, C, D, L, T) < 1 or N > N0 or math.log2(D) > L * math.log2(T) + 1e-12:
        raise ValueError(f"not a bioD spec: N0 {N0}, N {N}, K {K}, C {C}, D {D}, L {L}, T {T} (need all >= 1, N <= N0, D <= T^L)")


def stored_bits(p1: float, p2: float, p3: float, *, N0: int, N: int, K: int, C: int, D: int, L: int, T: int) -> Bits:
    """The three terms of the lower bound at losses p1, p2, p3 (nats, summed over their tokens)."""
    _check(N0, N, K, C, D, L, T)
    return Bits(name=N * (math.log2(N0) - p1 / LN2),
                value=N * K * (C * math.log2(D) - p2 / LN2),
                diversity=K * D * (L * math.log2(T) - math.log2(D) - p3 / LN2))


def upper_bound(*, N0: int, N: int, K: int, C: int, D: int, L: int, T: int) -> Bits:
    """The data's bits, the no-error case: N log2(N0/N) + N K C log2 D + K D log2(T^L / D)."""
    return stored_bits(math.log(N), 0.0, 0.0, N0=N0, N=N, K=K, C=C, D=D, L=L, T=T)


def _check_bios(N0: int, N: int, S0: int) -> None:
    if min(N0, N, S0) < 1 or N > N0:
        raise ValueError(f"not a bioS spec: N0 {N0}, N {N}, S0 {S0} (need all >= 1, N <= N0)")


def bios_stored_bits(p1: float, p2: float, *, N0: int, N: int, S0: int) -> Bits:
    """The bioS bound's terms at losses p1 (the name) and p2 (a person's values and first pronoun), nats, summed."""
    _check_bios(N0, N, S0)
    return Bits(name=N * (math.log2(N0) - p1 / LN2), value=N * (math.log2(S0) - p2 / LN2), diversity=0.0)


def bios_upper_bound(*, N0: int, N: int, S0: int) -> Bits:
    """The bioS data's bits: N log2(N0 / N) + N log2 S0."""
    return bios_stored_bits(math.log(N), 0.0, N0=N0, N=N, S0=S0)


def ratio(bits: float, params: int) -> float:
    """R(F) = bits / P."""
    if params < 1:
        raise ValueError(f"a parameter count must be positive, got {params}")
    return bits / params


def capacity_bound(data_bits: float, params: int) -> bool:
    """Whether the data holds more bits than PEAK (2) per parameter: only then can the model's capacity, not the
    data, limit what it stores."""
    return data_bits > PEAK * params
