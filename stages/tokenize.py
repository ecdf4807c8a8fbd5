"""tokenize@DATASET: the world's examples -> uint16 training windows + tokenizer.json (physlm/tokenize.py).

The world's tokenize step (physlm/worlds/<world>/tokenize.py) gives its vocabulary and its splits' token ids
(grammars and iGSM: train and test; biographies: train, qa and test); each split is packed into windows of
`tokenize.context + 1` tokens (`tokenize.pack`) and written as <split>.npy. meta.json records the world, the
packing, the vocabulary's size and specials, the window and token counts, and the world's own keys (a text
world's `units`, and how many examples were too long for a window). A world that streams also gets
stream.json (copied from raw/) and stream_sample.parquet, the examples of the first `generate.stream_sample`
windows of the training stream (physlm/stream.py, `train.stream`)."""

import numpy as np

from physlm import worlds
from physlm.cli import run_stage
from physlm.errors import DataError
from physlm.io import Paths, atomic_path, write_json
from physlm.stream import write_stream_files
from physlm.tokenize import drop_long, pack_windows


def main(paths: Paths, cfg) -> None:
    world = worlds.get(cfg.world)
    tokenized = world.step("tokenize").tokenize(paths.raw, cfg.tokenize)
    context, pack, vocab = cfg.tokenize.context, cfg.tokenize.pack, tokenized.vocab
    meta = {"world": cfg.world, "context": context, "pack": pack, "vocab_size": vocab.size, "bos_id": vocab.bos_id,
            "eos_id": vocab.eos_id, "windows": {}, "tokens": {}, **tokenized.meta}
    with atomic_path(paths.tokens, is_dir=True) as tmp:
        for split, encode in tokenized.splits.items():
            flat, offsets = encode()
            if tokenized.drop_long:  # a text example must fit one window with its <bos> and <eos>
                flat, offsets, dropped = drop_long(flat, offsets, context - 1)
                meta.setdefault("dropped_too_long", {})[split] = dropped
                if len(offsets) == 1:
                    raise DataError(f"{paths.raw}: no {split} example fits tokenize.context = {context}")
            windows = pack_windows(flat, offsets, context, bos_id=vocab.bos_id, eos_id=vocab.eos_id, pack=pack)
            np.save(tmp / f"{split}.npy", windows)
            meta["windows"][split], meta["tokens"][split] = len(windows), int(len(flat))
        vocab.save(tmp / "tokenizer.json")
        write_json(tmp / "meta.json", meta)
        if world.takes_part("stream"):  # what train.stream needs, and a sample of it
            write_stream_files(paths.raw, tmp)
    print(f"tokenize@{paths.study}: {meta['windows']} windows of {context + 1} tokens -> {paths.tokens}")


if __name__ == "__main__":
    run_stage("tokenize", main)
