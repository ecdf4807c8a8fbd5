"""tokenize@DATASET: Parquet examples -> uint16 training windows + tokenizer.json (physlm/tokenize.py,
physlm/text.py for the text worlds).

Windows: train.npy and test.npy (validation); the biography world writes train.npy (every biography),
qa.npy (the P_train questions with their answers: finetuning and mixed training) and test.npy (the P_test
questions and answers: the out-of-distribution validation loss).

Grammar and iGSM datasets also get stream.json (copied from raw/) and stream_sample.parquet, the examples of
the first `generate.stream_sample` windows of the training stream (physlm/stream.py, `train.stream`)."""

import numpy as np

from physlm.cli import Paths, run_stage
from physlm.config import TokenizeStage
from physlm.errors import DataError
from physlm.generate import bio_vocabulary, igsm_texts, igsm_vocabulary, load_language
from physlm.io import atomic_path, read_parquet, write_json
from physlm.stream import RECORD as STREAM_RECORD, write_stream_files
from physlm.text import encode_many
from physlm.tokenize import Vocab, cfg_encode, cfg_vocab, pack_windows


def encode_cfg(path, vocab: Vocab) -> tuple[np.ndarray, np.ndarray]:
    tokens = read_parquet(path, ["tokens"])["tokens"]
    flat = cfg_encode(tokens.explode(empty_as_null=False).to_numpy())
    return flat, np.concatenate([[0], np.cumsum(tokens.list.len().to_numpy())])


def encode_igsm(path, vocab) -> tuple[np.ndarray, np.ndarray]:
    return encode_many(vocab, igsm_texts(path))


def bio_split_texts(raw) -> dict[str, list[str]]:
    """The bio world's training texts: biographies (train), P_train QA (qa), P_test QA (test), each list in
    a fixed shuffled order (seed 0): the tables list a person's entries and questions together, and packed
    side by side in one window they could be copied in context instead of recalled."""
    from physlm.worlds.bio.text import bio_texts, qa_text

    qa = read_parquet(raw / "qa.parquet", ["question", "answer", "split"])
    texts = {"train": bio_texts(read_parquet(raw / "bios.parquet", ["text"]))}
    for name, split in (("qa", "P_train"), ("test", "P_test")):
        texts[name] = [qa_text(q, a) for q, a, _ in qa.filter(qa["split"] == split).iter_rows()]
        if not texts[name]:
            raise DataError(f"{raw / 'qa.parquet'}: no {split} questions")
    rng = np.random.default_rng(0)
    return {name: [found[k] for k in rng.permutation(len(found))] for name, found in texts.items()}


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
    elif cfg.world == "igsm":
        vocab, encode = igsm_vocabulary(cfg.tokenize.units), encode_igsm
    else:
        vocab, texts = bio_vocabulary(paths.raw, cfg.tokenize.units), bio_split_texts(paths.raw)
        encode = lambda split, vocab: encode_many(vocab, texts[split])  # noqa: E731
    meta = {"world": cfg.world, "context": context, "pack": pack, "vocab_size": vocab.size,
            "bos_id": vocab.bos_id, "eos_id": vocab.eos_id, "windows": {}, "tokens": {}}
    if cfg.world != "cfg":
        meta["units"] = cfg.tokenize.units
    with atomic_path(paths.tokens, is_dir=True) as tmp:
        for split in ("train", "qa", "test") if cfg.world == "bio" else ("train", "test"):
            source = split if cfg.world == "bio" else paths.raw / f"{split}.parquet"
            flat, offsets = encode(source, vocab)
            if cfg.world != "cfg":  # a text example must fit one window with its <bos> and <eos>
                flat, offsets, dropped = drop_long(flat, offsets, context - 1)
                meta.setdefault("dropped_too_long", {})[split] = dropped
                if len(offsets) == 1:
                    raise DataError(f"{paths.raw}: no {split} example fits tokenize.context = {context}")
            windows = pack_windows(flat, offsets, context, bos_id=vocab.bos_id, eos_id=vocab.eos_id, pack=pack)
            np.save(tmp / f"{split}.npy", windows)
            meta["windows"][split], meta["tokens"][split] = len(windows), int(len(flat))
        vocab.save(tmp / "tokenizer.json")
        write_json(tmp / "meta.json", meta)
        if (paths.raw / STREAM_RECORD).is_file():  # cfg and igsm: what train.stream needs, and a sample of it
            write_stream_files(paths.raw, tmp)
    print(f"tokenize@{paths.study}: {meta['windows']} windows of {context + 1} tokens -> {paths.tokens}")


if __name__ == "__main__":
    run_stage("tokenize", main)
