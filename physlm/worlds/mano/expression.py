"""Mano examples, one at a time (Part 4.1, SPEC 7.3 and 11.1.3): a prefix expression of ℓ operations mod 23,
its value, and the example text the model trains on. No torch here.

The modulus is the paper's 23 unless a dataset asks for a smaller one (`generate.modulus`, 2..23: a miniature a
CPU learns in minutes has smaller tables to memorise); the vocabulary always has the 23 value tokens 0..22, so
a smaller modulus only leaves some unused, and with 23 every example is the same as before the option existed.

One expression (`sample_expression`), recursively from ℓ operations: ℓ = 0 is a leaf, a value uniform in
0..22; otherwise an operator uniform among `operators` (the paper's "+-*"), then l1 ~ U{0..ℓ-1} operations for
the left child and ℓ-1-l1 for the right one, each generated the same way, and the expression written in prefix
order (operator, left, right). The value is computed mod 23 while the tree is built; `/` (an option the
released code has, the paper does not use) multiplies by the modular inverse, and a division by zero
regenerates the whole expression, as the released code does. An expression of ℓ operations has ℓ + 1 leaves,
so 2ℓ + 1 symbols.

The text of an example (`Example.text`, what tokenize encodes): `<len_ℓ> expression <ans> value`, e.g.
`<len_2> + 3 * 4 5 <ans> 0`; the engine adds `<bos>` before and `<eos>` after, so the model sees 2ℓ + 5 tokens
up to the answer, as the released layout `[bos] [len] expression [ans] [value]` has, plus `<eos>`.
The answer marker is one token for every ℓ, as the paper writes it (the released code uses a marker per ℓ).

Knowledge augmentation (`augment`, the released code's option, "doesn't quite matter"): every operator
occurrence is written with one of two symbols (`+` or `+'`, ...), and the length token and answer marker with
one of two (`<len_ℓ>` / `<len_ℓ'>`, `<ans>` / `<ans'>`), each uniformly. The code's two `<bos>` ids have no
counterpart: `<bos>` is the engine's. The variants are drawn after the expression, so an example's expression
and value do not depend on `augment`.

Example `index` of split `split` is drawn from its own RNG, `random.Random(f"mano:{split}:{seed}:{index}")`, so
it is a pure function of those and the length rule: train ℓ ~ U{1..L}, test ℓ = L, lengths ℓ = the
`index % len(lengths)`-th of the eval lengths.

The generator's value is checked in tests/test_mano.py against an independent evaluator (a stack machine that
reads the prefix expression from the right).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass

MOD = 23  # the paper's modulus, and the largest a dataset may use (the vocabulary has value tokens 0..22)
OPERATORS = "+-*/"  # every operator a dataset may use; the paper's is "+-*"
MAX_OPS = 64  # the longest expression the vocabulary has a length token for
ALT = "'"  # marks the second symbol of an augmented pair
ANSWER, ANSWER_ALT = "<ans>", "<ans'>"
SPLITS = ("train", "test", "lengths")
SPEC_FILE = "mano.json"  # the resolved generate params beside the Parquet files (raw/): probe and evaluate read the modulus


def length_token(ops: int, variant: int = 0) -> str:
    return f"<len_{ops}{ALT * variant}>"


def operator_symbol(op: str, variant: int = 0) -> str:
    return op + ALT * variant


def is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, int(n**0.5) + 1))


def combine(op: str, a: int, b: int, modulus: int = MOD) -> int | None:
    """a op b mod `modulus` (a prime when op is "/"); None for a division by zero."""
    if op == "+":
        return (a + b) % modulus
    if op == "-":
        return (a - b) % modulus
    if op == "*":
        return (a * b) % modulus
    if op == "/":
        return None if b == 0 else a * pow(b, -1, modulus) % modulus
    raise ValueError(f"unknown operator {op!r}; operators: {OPERATORS}")


def sample_expression(rng: random.Random, ops: int, operators: str, modulus: int = MOD) -> tuple[list[str], int | None]:
    """One expression of `ops` operations in prefix order (operators and values as strings) and its value mod
    `modulus` (None when a division by zero occurred somewhere)."""
    if ops == 0:
        leaf = rng.randrange(modulus)
        return [str(leaf)], leaf
    op = rng.choice(operators)
    left_ops = rng.randint(0, ops - 1)
    left, a = sample_expression(rng, left_ops, operators, modulus)
    right, b = sample_expression(rng, ops - 1 - left_ops, operators, modulus)
    value = None if a is None or b is None else combine(op, a, b, modulus)
    return [op, *left, *right], value


@dataclass(frozen=True)
class Example:
    """One Mano example: `expression` in canonical symbols (no augmentation variants), `text` as trained on."""

    ops: int
    expression: tuple[str, ...]
    value: int
    text: str


def make_example(rng: random.Random, ops: int, operators: str, augment: bool, modulus: int = MOD) -> Example:
    """An expression of `ops` operations (regenerated while a division by zero occurs) and its example text."""
    if not 1 <= ops <= MAX_OPS:
        raise ValueError(f"an expression has 1..{MAX_OPS} operations, got {ops}")
    if not 2 <= modulus <= MOD or ("/" in operators and not is_prime(modulus)):
        raise ValueError(f"modulus {modulus}: must lie in 2..{MOD}, and be a prime when dividing")
    while True:
        expression, value = sample_expression(rng, ops, operators, modulus)
        if value is not None:
            break
    pick = (lambda: rng.randint(0, 1)) if augment else (lambda: 0)
    written = [operator_symbol(s, pick()) if s in OPERATORS else s for s in expression]
    text = " ".join([length_token(ops, pick()), *written, ANSWER_ALT if pick() else ANSWER, str(value)])
    return Example(ops, tuple(expression), value, text)


def example_ops(split: str, index: int, rng: random.Random, max_ops: int, lengths: Sequence[int]) -> int:
    """ℓ of example `index` of `split`: train U{1..L} (drawn from the example's RNG), test L, lengths cycled."""
    if split == "train":
        return rng.randint(1, max_ops)
    if split == "test":
        return max_ops
    if split == "lengths":
        return lengths[index % len(lengths)]
    raise ValueError(f"unknown Mano split {split!r}; splits: {', '.join(SPLITS)}")


HOLD_OUT_TRIES = 10_000  # redraws of one example before a held-out split is declared impossible


def held_out_bucket(expression: Sequence[str]) -> float:
    """Where a canonical expression falls in [0, 1): a hash of its symbols (independent of seed, split and index, so
    the same expression lands on the same side wherever it is drawn)."""
    digest = hashlib.sha256(("mano-held-out:" + " ".join(expression)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def example(seed: int, split: str, index: int, *, max_ops: int, operators: str = "+-*", augment: bool = False,
            lengths: Sequence[int] = (), modulus: int = MOD, held_out: float = 0.0) -> Example:
    """Example `index` of `split`: a pure function of the arguments (its own RNG).

    held_out > 0: L-operation expressions (ops = max_ops) whose `held_out_bucket` is below it are evaluation-only:
    a training example of L operations that is one is redrawn (its ℓ kept), and an evaluation example of L
    operations (test; lengths at ℓ = L) is redrawn until it is one. The first draw is the held_out = 0 draw, so
    the redraws only replace what the split excludes. Shorter expressions are never held out (they carry the
    operation tables every longer one needs)."""
    rng = random.Random(f"mano:{split}:{seed}:{index}")
    ops = example_ops(split, index, rng, max_ops, lengths)
    found = make_example(rng, ops, operators, augment, modulus)
    if not held_out or ops != max_ops:
        return found
    want = split != "train"
    for attempt in range(1, HOLD_OUT_TRIES + 1):
        if (held_out_bucket(found.expression) < held_out) == want:
            return found
        found = make_example(random.Random(f"mano:{split}:{seed}:{index}:redraw{attempt}"), ops, operators, augment, modulus)
    raise ValueError(f"no {'held-out' if want else 'trainable'} expression of {ops} operations in {HOLD_OUT_TRIES} draws"
                     f" (held_out {held_out}): too few expressions of that length fall on that side")
