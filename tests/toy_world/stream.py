"""The toy world's stream step, for tests only: `WORLD` takes no part in `stream` (its studies train on the
tokenized split); tests register a copy of it that does (`dataclasses.replace(WORLD, steps={"stream"})`) to
stream windows, masked ones included. Example k of window j is a string of `generate.length` letters from
its own RNG, `random.Random(f"toy-stream:{seed}:{j}:{k}")`; with the dataset's `tokenize.loss: copy` it carries
the loss mask of its copy (`tokenize.copy_mask`)."""

from __future__ import annotations

import json
import random

import polars as pl

from physlm.stream import Example, StreamSpec

from .tokenize import LETTERS, VOCAB, copy_mask, encode


class ToySource:
    """Examples of the spec's dataset (`physlm.stream.ExampleSource`)."""

    drops_long = False

    def __init__(self, spec: StreamSpec) -> None:
        generate = json.loads(spec.generate)
        self.length, self.letters = generate["length"], generate["letters"]
        self.masked = spec.tokenization().get("loss") == "copy"
        self.vocab_size = VOCAB.size

    def example(self, seed: int, j: int, k: int) -> Example:
        rng = random.Random(f"toy-stream:{seed}:{j}:{k}")
        text = "".join(rng.choice(LETTERS[: self.letters]) for _ in range(self.length))
        ids, _ = encode([text])
        return Example(k, ids, text, copy_mask(text) if self.masked else None)

    def frame(self, examples: list[Example]) -> pl.DataFrame:
        return pl.DataFrame({"index": [e.k for e in examples], "text": [e.payload for e in examples]},
                            schema={"index": pl.Int64, "text": pl.String})


def source(spec: StreamSpec) -> ToySource:
    return ToySource(spec)
