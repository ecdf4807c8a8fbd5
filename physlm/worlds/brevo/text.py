"""Brevo's tokens: the vocabulary of a dataset, an instance as token ids (with its loss mask), and a generated answer
read back into vertices. No torch here.

Layout of an instance (SPEC 7.3, 11.1.2): `<bos> p1 c1 p2 c2 … <query> q <ans> a1 … ap <eos>`, every name one token
(Brevo1: the vertex id, symbols `1`..`N`) or one word (Brevo2: 2-4 symbols over `1`..`V`, the last one shifted to
`V+1`..`2V`, so a word's end is visible). The engine adds `<bos>` and `<eos>`; the loss is on `<ans>`, the answer
and the final `<eos>` (the released code's labels; its `<ans>` and eos share the id 9998, here they are two tokens).

Vocabulary (`Layout.vocab`): `<bos>` = 0, `<eos>` = 1, `<query>` = 2, `<ans>` = 3, then the name symbols `1`, `2`, …
(N of them for Brevo1, 2V for Brevo2), so symbol s has id s + 3.

Reading an answer back (`Layout.read_answer`): the generation after `<ans>` is cut at its first `<eos>` (the
model's end of the answer); a generation with no `<eos>`, with a special token inside, or (Brevo2) ending inside a
word is malformed (None). Otherwise the names in order, each the vertex it names, or None for a well-formed name
that is no vertex of this graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from physlm.tokenize import BOS, EOS, Vocab
from physlm.worlds.brevo.graph import Instance

QUERY, ANSWER = "<query>", "<ans>"
QUERY_ID, ANSWER_ID = 2, 3
FIRST_SYMBOL = 4  # id of name symbol 1


@dataclass(frozen=True)
class Layout:
    """How names are written: one token per vertex id 1..N (`names="tokens"`, Brevo1) or one word per vertex
    (`"words"`, Brevo2: `word_vocab` V, lengths `word_min`..`word_max`)."""

    names: str
    N: int
    word_vocab: int = 4
    word_min: int = 2
    word_max: int = 4

    @property
    def symbols(self) -> int:
        return self.N if self.names == "tokens" else 2 * self.word_vocab

    @property
    def word_shape(self) -> tuple[int, int, int] | None:
        return (self.word_vocab, self.word_min, self.word_max) if self.names == "words" else None

    def vocab(self) -> Vocab:
        return Vocab((BOS, EOS, QUERY, ANSWER, *(str(s) for s in range(1, self.symbols + 1))))

    def name(self, inst: Instance, vertex: int) -> list[int]:
        """The token ids of a vertex's name."""
        symbols = (vertex,) if self.names == "tokens" else inst.words[vertex]
        return [s + FIRST_SYMBOL - 1 for s in symbols]

    def encode(self, inst: Instance) -> tuple[list[int], list[int]]:
        """An instance's ids without `<bos>`/`<eos>` (edges, `<query> q <ans>`, answer) and its loss mask (1 from
        `<ans>` on)."""
        ids = [t for u, v in inst.edges for t in (*self.name(inst, u), *self.name(inst, v))]
        ids += [QUERY_ID, *self.name(inst, inst.query), ANSWER_ID]
        prompt = len(ids) - 1
        ids += [t for v in inst.answer for t in self.name(inst, v)]
        return ids, [0] * prompt + [1] * (len(ids) - prompt)

    def prompt(self, inst: Instance) -> list[int]:
        """What the model is given: `<bos> edges <query> q <ans>`."""
        ids, loss = self.encode(inst)
        return [Vocab.bos_id, *ids[: loss.index(1) + 1]]

    def sequence(self, inst: Instance) -> list[int]:
        """The whole instance as trained on, `<bos>` … `<eos>`."""
        return [Vocab.bos_id, *self.encode(inst)[0], Vocab.eos_id]

    def answer_length(self, inst: Instance) -> int:
        """Tokens of the gold answer, `<eos>` included."""
        return sum(len(self.name(inst, v)) for v in inst.answer) + 1

    def read_answer(self, generated: Sequence[int], inst: Instance) -> list[int | None] | None:
        """The vertices a generation after `<ans>` names (module docstring); None when malformed."""
        generated = list(generated)
        if Vocab.eos_id not in generated:
            return None
        body = generated[: generated.index(Vocab.eos_id)]
        if any(not FIRST_SYMBOL <= t < FIRST_SYMBOL + self.symbols for t in body):
            return None
        symbols = [t - FIRST_SYMBOL + 1 for t in body]
        if self.names == "tokens":
            return [s if s in inst.parents else None for s in symbols]
        found, word = [], []
        by_word = {w: v for v, w in inst.words.items()}
        for s in symbols:
            word.append(s)
            if s > self.word_vocab:
                found.append(by_word.get(tuple(word)))
                word = []
        return None if word else found


def flat_encode(layout: Layout, instances: Sequence[Instance]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(flat ids, offsets, loss mask uint8) of many instances."""
    encoded = [layout.encode(inst) for inst in instances]
    flat = np.fromiter((t for ids, _ in encoded for t in ids), dtype=np.int64)
    loss = np.fromiter((x for _, mask in encoded for x in mask), dtype=np.uint8)
    offsets = np.concatenate([[0], np.cumsum([len(ids) for ids, _ in encoded])]).astype(np.int64)
    return flat, offsets, loss
