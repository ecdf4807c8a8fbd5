"""tokenize@DATASET: the world's examples -> uint16 training windows + tokenizer.json (physlm/tokenize.py).

The world's tokenize step (physlm/worlds/<world>/tokenize.py) gives its vocabulary and its splits' token ids
(grammars and iGSM: train and test; biographies: train, qa and test); each split is packed into windows of
`tokenize.context + 1` tokens (`tokenize.pack`) and written as <split>.npy. meta.json records the world, the
packing, the vocabulary's size and specials, the window and token counts, and the world's own keys (a text
world's `units`, and how many examples were too long for a window). A world that streams also gets
stream.json (copied from raw/) and stream_sample.parquet, the examples of the first `generate.stream_sample`
windows of the training stream (physlm/stream.py, `train.stream`).

A split the world gives a loss mask for (`(flat, offsets, loss)`: 1 where a token is a training target, 0 where
it is context only) also gets <split>.loss.npy, the mask packed exactly as the tokens (uint8, the shape of
<split>.npy; `Tokenized.eos_loss` says whether each example's <eos> is a target, its <bos> never is), and
meta.json records `eos_loss` and, per masked split, `loss_mask`: the target tokens among the windows' target
positions (all but each window's first) and their share."""

import numpy as np

from physlm import worlds
from physlm.cli import run_stage
from physlm.errors import DataError
from physlm.io import Paths, atomic_path, write_json
from physlm.stream import write_stream_files
from physlm.tokenize import drop_long, pack_loss, pack_windows

LOSS_SUFFIX = ".loss.npy"  # <split>.loss.npy beside <split>.npy (physlm.train.load_windows reads it)


def main(paths: Paths, cfg) -> None:
    world = worlds.get(cfg.world)
    tokenized = world.step("tokenize").tokenize(paths.raw, cfg.tokenize)
    context, pack, vocab = cfg.tokenize.context, cfg.tokenize.pack, tokenized.vocab
    meta = {"world": cfg.world, "context": context, "pack": pack, "vocab_size": vocab.size, "bos_id": vocab.bos_id,
            "eos_id": vocab.eos_id, "windows": {}, "tokens": {}, **tokenized.meta}
    with atomic_path(paths.tokens, is_dir=True) as tmp:
        for split, encode in tokenized.splits.items():
            flat, offsets, *mask = encode()
            loss = _check_loss(mask, flat, split) if mask else None
            if tokenized.drop_long:  # a text example must fit one window with its <bos> and <eos>
                if loss is not None:
                    loss, _, _ = drop_long(loss, offsets, context - 1)
                flat, offsets, dropped = drop_long(flat, offsets, context - 1)
                meta.setdefault("dropped_too_long", {})[split] = dropped
                if len(offsets) == 1:
                    raise DataError(f"{paths.raw}: no {split} example fits tokenize.context = {context}")
            windows = pack_windows(flat, offsets, context, bos_id=vocab.bos_id, eos_id=vocab.eos_id, pack=pack)
            np.save(tmp / f"{split}.npy", windows)
            meta["windows"][split], meta["tokens"][split] = len(windows), int(len(flat))
            if loss is not None:
                packed = pack_loss(loss, offsets, context, pack=pack, eos_loss=tokenized.eos_loss)
                np.save(tmp / f"{split}{LOSS_SUFFIX}", packed)
                targets = int(packed[:, 1:].sum(dtype=np.int64))
                meta["eos_loss"] = tokenized.eos_loss
                meta.setdefault("loss_mask", {})[split] = {"targets": targets, "share": targets / packed[:, 1:].size}
        vocab.save(tmp / "tokenizer.json")
        write_json(tmp / "meta.json", meta)
        if world.takes_part("stream"):  # what train.stream needs, and a sample of it
            write_stream_files(paths.raw, tmp)
    print(f"tokenize@{paths.study}: {meta['windows']} windows of {context + 1} tokens -> {paths.tokens}")


def _check_loss(mask: list, flat: np.ndarray, split: str) -> np.ndarray:
    """The split's loss mask: one 0/1 per token; DataError otherwise."""
    if len(mask) != 1:
        raise DataError(f"tokenize: split {split!r} gives {2 + len(mask)} arrays; expected (flat, offsets) or (flat, offsets, loss)")
    loss = np.asarray(mask[0])
    if loss.shape != flat.shape or (loss.size and not np.isin(loss, (0, 1)).all()):
        raise DataError(f"tokenize: split {split!r}'s loss mask must be one 0 or 1 per token ({len(flat)}), got"
                        f" {loss.dtype} {list(loss.shape)}")
    return loss.astype(np.uint8)


if __name__ == "__main__":
    run_stage("tokenize", main)
