"""iGSM's text and vocabulary (SPEC 2.1's `[222] problem [223] solution [224] answer [EOS]` with our own
markers): `<bos> [PROB] problem [SOL] solution [ANS] answer <eos>`; the V-probes append `[START] A [END]` or
`[START] A [MID] B [END]` to a truncated problem, and Part 2.2's retry data writes `[BACK]`. The word-level
machinery is `physlm.text`'s; this module never imports torch.
"""

from __future__ import annotations

from collections.abc import Iterable

from physlm.text import ATTACHED, TextVocab, split_words
from physlm.tokenize import BOS, EOS

PROB, SOL, ANS, START, MID, END, BACK = "[PROB]", "[SOL]", "[ANS]", "[START]", "[MID]", "[END]", "[BACK]"
IGSM_MARKERS = (PROB, SOL, ANS, START, MID, END, BACK)
IGSM_SYMBOLS = ("=", "+", "-", "*")
IGSM_WORDS = ("The", "number", "of", "each", "equals", "more", "than", "times", "as", "much", "the", "sum",
              "difference", "and", "How", "many", "does", "have", "Define", "so", "BACK")
LETTERS = tuple("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def igsm_vocab(names: Iterable[str], units: str = "names") -> TextVocab:
    """The iGSM vocabulary: specials, markers, punctuation and operators, numbers 0..22, the 52 solution
    letters, the template words, then (sorted) every item and category name as one token (`units="names"`)
    or every word of them (`units="words"`, closer to the papers' BPE, where a name is several tokens)."""
    if units not in ("names", "words"):
        raise ValueError(f"units must be 'names' or 'words', got {units!r}")
    fixed = [BOS, EOS, *IGSM_MARKERS, *ATTACHED, *IGSM_SYMBOLS, *(str(n) for n in range(23)), *LETTERS, *IGSM_WORDS]
    pieces = set(names) if units == "names" else {w for name in names for w in split_words(name)}
    return TextVocab(tuple(fixed + sorted(pieces - set(fixed))))


def igsm_sequence(problem: str, solution: str, answer: int) -> str:
    """One training example's text (without <bos>/<eos>, which packing adds)."""
    return f"{PROB} {problem} {SOL} {solution} {ANS} {answer}"


def igsm_prompt(problem: str) -> str:
    """The evaluation prompt (after <bos>): the problem, then the solution marker."""
    return f"{PROB} {problem} {SOL}"


def parse_generation(text: str) -> tuple[str, int | None]:
    """(solution, answer) of a generated continuation `solution [ANS] answer`; answer None if absent or not
    a number 0..22."""
    solution, marker, rest = text.partition(ANS)
    answer = rest.strip()
    ok = marker and answer.isdigit() and int(answer) < 23
    return solution.strip(), int(answer) if ok else None
