"""Word-level tokenization of the text worlds (iGSM, the biographies): the shared machinery.

The papers use GPT-2's BPE; nothing can be downloaded here, and the worlds' vocabularies are closed (item
names, template words, numbers, letters), so each text world gets a word-level vocabulary built from its
own world knowledge: no unknown words, one token per number 0..22 and per solution letter. A word is a run
of characters other than white space and the split marks; the possessive `'s` and the marks `. ; , ? :`
are tokens of their own, so "Penguin Beach's Giraffe equals 6." is
`Penguin | Beach | 's | Giraffe | equals | 6 | .`. `TextVocab.tokenizer()` is the same split as an HF
`tokenizers` WordLevel model (saved as tokenizer.json; tests/test_text.py checks the two encode alike);
`encode` is a plain-Python equivalent used on the hot path. `decode` joins tokens with single spaces except
before the split marks, which is exactly how the worlds write their text, so decode(encode(t)) == t.
Each text world builds its own vocabulary and texts (`physlm/worlds/igsm/text.py`,
`physlm/bios/text.py`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from physlm.errors import DataError
from physlm.tokenize import Vocab

ATTACHED = ("'s", ".", ";", ",", "?", ":")  # written without a space before them
_SPLIT = re.compile(r"'s\b|[.;,?:]|(?:[^\s.;,?:']|'(?!s\b))+")



def split_words(text: str) -> list[str]:
    """The word tokens of `text` (see the module docstring)."""
    return _SPLIT.findall(text)


def join_words(words: Iterable[str]) -> str:
    """Inverse of `split_words` for text written the worlds' way."""
    out: list[str] = []
    for w in words:
        if out and w not in ATTACHED:
            out.append(" ")
        out.append(w)
    return "".join(out)


def _phrases(symbols: Iterable[str]) -> dict[tuple[str, ...], str]:
    """The symbols of several words ("Penguin Beach", "Princeton, NJ"), keyed by their `split_words`."""
    return {tuple(words): s for s in symbols if len(words := split_words(s)) > 1}


def _phrase_pattern(symbols: Sequence[str]) -> str:
    """The split regex: phrase symbols (longest first, whole words only), then `split_words`'."""
    phrases = sorted(_phrases(symbols).values(), key=lambda s: (-len(s), s))
    head = rf"\b(?:{'|'.join(re.escape(p) for p in phrases)})\b|" if phrases else ""
    return head + _SPLIT.pattern


@dataclass(frozen=True)
class TextVocab(Vocab):
    """A word-level vocabulary: `<bos>`, `<eos>`, then the world's words in a fixed order. A symbol of several
    words (an item name such as "Penguin Beach", a city "Princeton, NJ", "McDonald's") is one token wherever
    its words occur in a row (longest first), and splits back into that very symbol."""

    def __post_init__(self) -> None:
        super().__post_init__()
        phrases = _phrases(self.symbols)
        object.__setattr__(self, "_phrases", phrases)
        object.__setattr__(self, "_longest", max(map(len, phrases), default=1))

    def split(self, text: str) -> list[str]:
        """The token strings of `text`: its words, with runs of words that spell a phrase symbol merged
        (longest first). Equal to the HF tokenizer's split (`tokenizer()`, a regex of the phrases)."""
        words = split_words(text)
        if not self._phrases:
            return words
        out, i = [], 0
        while i < len(words):
            for n in range(min(self._longest, len(words) - i), 1, -1):
                symbol = self._phrases.get(tuple(words[i : i + n]))
                if symbol is not None:
                    out.append(symbol)
                    i += n
                    break
            else:
                out.append(words[i])
                i += 1
        return out

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`; DataError naming the first word outside the vocabulary."""
        ids = self._ids
        try:
            return [ids[w] for w in self.split(text)]
        except KeyError as err:
            raise DataError(f"word {err.args[0]!r} is not in the vocabulary (in {text[:80]!r})") from None

    def decode(self, ids: Sequence[int]) -> str:
        """Text of token ids (ids out of range are rendered as `<?>`)."""
        n = len(self.symbols)
        return join_words(self.symbols[i] if 0 <= i < n else "<?>" for i in ids)

    def tokenizer(self):  # -> tokenizers.Tokenizer
        from tokenizers import Regex, Tokenizer, models, pre_tokenizers

        tok = Tokenizer(models.WordLevel(dict(self._ids), unk_token=None))
        # keep exactly the regex's matches (the tokens), drop what lies between them (white space)
        tok.pre_tokenizer = pre_tokenizers.Split(Regex(_phrase_pattern(self.symbols)), behavior="removed", invert=True)
        return tok

    @classmethod
    def load(cls, path) -> TextVocab:
        return cls(Vocab.load(path).symbols)


def encode_many(vocab: TextVocab, texts: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
    """(flat ids, offsets) of many texts, as `physlm.tokenize.pack_windows` takes them."""
    flat: list[int] = []
    offsets = [0]
    for text in texts:
        flat += vocab.encode(text)
        offsets.append(len(flat))
    return np.asarray(flat, dtype=np.int64), np.asarray(offsets, dtype=np.int64)
