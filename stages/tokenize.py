"""tokenize@DATASET: Parquet examples -> uint16 training windows + tokenizer.json (physlm/tokenize.py,
physlm/text.py for the text worlds)."""

import numpy as np

from physlm.cli import Paths, run_stage
from physlm.config import TokenizeStage
from physlm.errors import DataError
from physlm.generate import igsm_texts, igsm_vocabulary, load_language
from physlm.io import atomic_path, read_parquet, write_json
from physlm.text import encode_many
from physlm.tokenize import Vocab, cfg_encode, cfg_vocab, pack_windows


def encode_cfg(path, vocab: Vocab) -> tuple[np.ndarray, np.ndarray]:
    tokens = read_parquet(path, ["tokens"])["tokens"]
    flat = cfg_encode(tokens.explode(empty_as_null=False).to_numpy())
    return flat, np.concatenate([[0], np.cumsum(tokens.list.len().to_numpy())])


def encode_igsm(path, vocab) -> tuple[np.ndarray, np.ndarray]:
    return encode_many(vocab, igsm_texts(path))


def drop_long(flat: np.ndarray, offsets: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Examples of at most `limit` tokens (SPEC 2.2: over-long problems are dropped); returns the count dropped."""
    lengths = np.diff(offsets)
    keep = lengths <= limit
    if keep.all():
        return flat, offsets, 0
    mask = np.repeat(keep, lengths)
    return flat[mask], np.concatenate([[0], np.cumsum(lengths[keep])]), int((~keep).sum())


def main(paths: Paths, cfg: TokenizeStage) -> None:
    context, pack = cfg.tokenize.context, cfg.tokenize.pack
    if cfg.world == "cfg":
        vocab, encode = cfg_vocab(load_language(paths.raw).vocab_size), encode_cfg
    else:
        vocab, encode = igsm_vocabulary(cfg.tokenize.units), encode_igsm
    meta = {"world": cfg.world, "context": context, "pack": pack, "vocab_size": vocab.size,
            "bos_id": vocab.bos_id, "eos_id": vocab.eos_id, "windows": {}, "tokens": {}}
    if cfg.world != "cfg":
        meta["units"] = cfg.tokenize.units
    with atomic_path(paths.tokens, is_dir=True) as tmp:
        for split in ("train", "test"):
            flat, offsets = encode(paths.raw / f"{split}.parquet", vocab)
            if cfg.world != "cfg":  # a text example must fit one window with its <bos> and <eos>
                flat, offsets, dropped = drop_long(flat, offsets, context - 1)
                meta.setdefault("dropped_too_long", {})[split] = dropped
                if len(offsets) == 1:
                    raise DataError(f"{paths.raw / f'{split}.parquet'}: no example fits tokenize.context = {context}")
            windows = pack_windows(flat, offsets, context, bos_id=vocab.bos_id, eos_id=vocab.eos_id, pack=pack)
            np.save(tmp / f"{split}.npy", windows)
            meta["windows"][split], meta["tokens"][split] = len(windows), int(len(flat))
        vocab.save(tmp / "tokenizer.json")
        write_json(tmp / "meta.json", meta)
    print(f"tokenize@{paths.study}: {meta['windows']} windows of {context + 1} tokens -> {paths.tokens}")


if __name__ == "__main__":
    run_stage("tokenize", main)
