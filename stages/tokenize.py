"""tokenize@STUDY: Parquet sentences -> uint16 training windows + tokenizer.json (physlm/tokenize.py)."""

import numpy as np

from physlm.cli import Paths, run_stage
from physlm.config import TokenizeStage
from physlm.io import atomic_path, read_parquet, write_json
from physlm.tokenize import cfg_encode, cfg_vocab, pack_windows
from physlm.generate import load_language


def encode_split(path, context: int, pack: str):
    tokens = read_parquet(path, ["tokens"])["tokens"]
    flat = cfg_encode(tokens.explode(empty_as_null=False).to_numpy())
    offsets = np.concatenate([[0], np.cumsum(tokens.list.len().to_numpy())])
    return pack_windows(flat, offsets, context, bos_id=0, eos_id=1, pack=pack), int(len(flat))


def main(paths: Paths, cfg: TokenizeStage) -> None:
    vocab = cfg_vocab(load_language(paths.raw).vocab_size)
    meta = {"world": cfg.world, "context": cfg.tokenize.context, "pack": cfg.tokenize.pack, "vocab_size": vocab.size,
            "bos_id": vocab.bos_id, "eos_id": vocab.eos_id, "windows": {}, "tokens": {}}
    with atomic_path(paths.tokens, is_dir=True) as tmp:
        for split in ("train", "test"):
            windows, count = encode_split(paths.raw / f"{split}.parquet", cfg.tokenize.context, cfg.tokenize.pack)
            np.save(tmp / f"{split}.npy", windows)
            meta["windows"][split], meta["tokens"][split] = len(windows), count
        vocab.save(tmp / "tokenizer.json")
        write_json(tmp / "meta.json", meta)
    print(f"tokenize@{paths.study}: {meta['windows']} windows of {cfg.tokenize.context + 1} tokens -> {paths.tokens}")


if __name__ == "__main__":
    run_stage("tokenize", main)
