"""The name pools that the biography worlds share: Part 3.1's bioS people (`physlm/worlds/bio`) and Part 3.3's
bioD people (`physlm/worlds/capacity`) both draw full names from first/middle/last pools of 400/400/1000 names
(SPEC 4.1, 6.1). The pools are package data here (`first_names.json`, `middle_names.json`, `last_names.json`,
written for physlm), outside any world, because a world imports no other world (tests/test_import_graph.py).

`pool(kind, size)` is the first `size` names of a pool, in file order; `PARTS` the kinds in name order. No torch.
"""

from __future__ import annotations

import functools
import json
from importlib import resources

PARTS = ("first_names", "middle_names", "last_names")  # a full name is one of each, in this order
SIZES = {"first_names": 400, "middle_names": 400, "last_names": 1000}  # every name in the files (SPEC 4.1)


@functools.cache
def _all(kind: str) -> tuple[str, ...]:
    if kind not in SIZES:
        raise ValueError(f"unknown name pool {kind!r}; pools: {', '.join(PARTS)}")
    return tuple(json.loads(resources.files(__name__).joinpath(f"{kind}.json").read_text(encoding="utf-8")))


def pool(kind: str, size: int) -> tuple[str, ...]:
    """The first `size` names of pool `kind`; ValueError naming the pool when size is not 1..its length."""
    names = _all(kind)
    if not 1 <= size <= len(names):
        raise ValueError(f"{kind}={size} must be between 1 and {len(names)} (the names in physlm/names)")
    return names[:size]
