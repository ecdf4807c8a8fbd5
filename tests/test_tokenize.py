"""Packing into windows and the HF tokenizer file agree with each other and keep sentences intact."""

from __future__ import annotations

import numpy as np
import pytest

from physlm.errors import DataError
from physlm.tokenize import Vocab, pack_windows
from physlm.worlds.cfg.tokenize import cfg_decode, cfg_encode, cfg_vocab


def test_pack_windows_is_the_bos_eos_stream() -> None:
    sentences = [[1, 2, 3], [3, 3], [2, 1, 1, 2]]
    flat = cfg_encode(np.concatenate(sentences))
    offsets = np.cumsum([0] + [len(s) for s in sentences])
    windows = pack_windows(flat, offsets, context=4, bos_id=0, eos_id=1)
    expected = []
    for s in sentences:
        expected += [0, *(t + 1 for t in s), 1]
    assert windows.shape == (len(expected) // 5, 5)
    assert windows.dtype == np.uint16
    assert windows.ravel().tolist() == expected[: windows.size]


def test_too_little_data_is_a_clear_error() -> None:
    with pytest.raises(DataError, match="not enough for one window"):
        pack_windows(cfg_encode(np.array([1, 2])), np.array([0, 2]), context=16, bos_id=0, eos_id=1)


def test_tokenizer_json_matches_the_offset_encoding(tmp_path) -> None:
    vocab = cfg_vocab(3)
    vocab.save(tmp_path / "tokenizer.json")
    loaded = Vocab.load(tmp_path / "tokenizer.json")
    assert loaded == vocab
    sentence = [3, 1, 2, 2, 3]
    ids = loaded.tokenizer().encode(" ".join(map(str, sentence))).ids
    assert ids == cfg_encode(np.array(sentence)).tolist()
    assert loaded.tokenizer().encode("<bos> 1 <eos>").ids == [0, 2, 1]


def test_decode_round_trip_and_malformed() -> None:
    assert cfg_decode([2, 3, 4, 1]) == [1, 2, 3]
    assert cfg_decode([2, 0, 4, 1]) is None
    assert cfg_decode([2, 1, 4, 1]) is None


def test_corrupt_tokenizer_file(tmp_path) -> None:
    (tmp_path / "tokenizer.json").write_text("{nope")
    with pytest.raises(DataError):
        Vocab.load(tmp_path / "tokenizer.json")


def test_sentence_layout_starts_every_window_at_a_sentence() -> None:
    rng = np.random.default_rng(0)
    sentences = [rng.integers(1, 4, size=rng.integers(3, 9)) for _ in range(200)]
    flat = cfg_encode(np.concatenate(sentences))
    offsets = np.cumsum([0] + [len(s) for s in sentences])
    windows = pack_windows(flat, offsets, context=15, bos_id=0, eos_id=1, pack="sentences")
    encoded = [[0, *(int(t) + 1 for t in s), 1] for s in sentences]
    assert (windows[:, 0] == 0).all()
    whole: set[int] = set()
    k = 0
    for window in windows.tolist():  # windows walk the sentences in order, each a run of consecutive ones
        while window[: len(encoded[k])] != encoded[k] and window[: len(encoded[k])] != encoded[k][: len(window)]:
            k += 1
        pos, j = 0, k
        while j < len(encoded) and window[pos : pos + len(encoded[j])] == encoded[j]:
            whole.add(j)
            pos, j = pos + len(encoded[j]), j + 1
        assert pos == len(window) or encoded[j][: len(window) - pos] == window[pos:]  # cut only at the end
    assert whole >= set(range(len(encoded) - 3))  # every sentence is seen whole (bar the tail)


def test_unknown_layout() -> None:
    with pytest.raises(ValueError, match="pack"):
        pack_windows(cfg_encode(np.array([1, 2, 3])), np.array([0, 3]), context=2, bos_id=0, eos_id=1, pack="zigzag")
