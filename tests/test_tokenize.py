"""Packing into windows and the HF tokenizer file agree with each other and keep sentences intact; loss masks
are packed exactly as the tokens (hand-built windows of both layouts, with and without a target <eos>)."""

from __future__ import annotations

import numpy as np
import pytest

from physlm.errors import DataError
from physlm.tokenize import Vocab, Windows, drop_long, pack_loss, pack_windows
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


# Loss masks: s0 = 5 6 7 (mask 0 1 1), s1 = 8 9 (1 0), s2 = 4 4 4 4 (0 0 1 1), packed as <bos> s <eos> ...
MASKED = ([5, 6, 7, 8, 9, 4, 4, 4, 4], [0, 3, 5, 9], [0, 1, 1, 1, 0, 0, 0, 1, 1])
PACKED = {  # (pack, context) -> (token windows, mask without eos_loss, mask with eos_loss), by hand
    ("stream", 4): ([[0, 5, 6, 7, 1], [0, 8, 9, 1, 0], [4, 4, 4, 4, 1]],
                    [[0, 0, 1, 1, 0], [0, 1, 0, 0, 0], [0, 0, 1, 1, 0]],
                    [[0, 0, 1, 1, 1], [0, 1, 0, 1, 0], [0, 0, 1, 1, 1]]),
    ("sentences", 5): ([[0, 5, 6, 7, 1, 0], [0, 8, 9, 1, 0, 4], [0, 4, 4, 4, 4, 1]],
                       [[0, 0, 1, 1, 0, 0], [0, 1, 0, 0, 0, 0], [0, 0, 0, 1, 1, 0]],
                       [[0, 0, 1, 1, 1, 0], [0, 1, 0, 1, 0, 0], [0, 0, 0, 1, 1, 1]]),
}


@pytest.mark.parametrize(("pack", "context"), list(PACKED))
@pytest.mark.parametrize("eos_loss", [False, True])
def test_pack_loss_lays_the_mask_out_as_the_tokens(pack: str, context: int, eos_loss: bool) -> None:
    """The mask is packed row for row with the tokens: 0 at every <bos>, eos_loss at every <eos>."""
    flat, offsets, loss = (np.array(a) for a in MASKED)
    tokens, without_eos, with_eos = PACKED[pack, context]
    assert pack_windows(flat, offsets, context, bos_id=0, eos_id=1, pack=pack).tolist() == tokens
    mask = pack_loss(loss.astype(np.uint8), offsets, context, pack=pack, eos_loss=eos_loss)
    assert mask.dtype == np.uint8 and mask.tolist() == (with_eos if eos_loss else without_eos)
    assert np.array_equal(pack_loss(loss.astype(bool), offsets, context, pack=pack, eos_loss=eos_loss), mask)


def test_pack_loss_rejects_a_mask_that_is_not_zero_one() -> None:
    with pytest.raises(DataError, match="0 or 1"):
        pack_loss(np.array([0, 2, 1]), np.array([0, 3]), context=2)


def test_dropping_long_examples_drops_their_masks_alike() -> None:
    """The tokenize stage drops over-long examples from the mask with the tokens' offsets."""
    flat, offsets, loss = (np.array(a) for a in MASKED)
    kept_flat, kept_offsets, dropped = drop_long(flat, offsets, 3)
    kept_loss, _, _ = drop_long(loss, offsets, 3)
    assert dropped == 1 and kept_flat.tolist() == [5, 6, 7, 8, 9] and kept_loss.tolist() == [0, 1, 1, 1, 0]
    assert kept_offsets.tolist() == [0, 3, 5]


def test_windows_index_tokens_and_mask_together() -> None:
    tokens, mask = np.arange(12).reshape(4, 3), np.eye(4, 3, dtype=np.uint8)
    picked = Windows(tokens, mask)[[2, 0]]
    assert picked.tokens.tolist() == [[6, 7, 8], [0, 1, 2]] and picked.loss.tolist() == [[0, 0, 1], [1, 0, 0]]
    assert len(picked) == 2 and picked.width == 3 and Windows(tokens)[1:].loss is None
    with pytest.raises(DataError, match="loss mask of shape"):
        Windows(tokens, mask[:, :2])


def test_the_tokenize_stage_rejects_a_malformed_mask() -> None:
    from stages.tokenize import _check_loss

    flat = np.arange(4)
    assert _check_loss([np.array([True, False, True, True])], flat, "train").tolist() == [1, 0, 1, 1]
    for bad in ([np.array([1, 0, 1])], [np.array([1, 0, 2, 1])], [np.ones(4), np.ones(4)]):
        with pytest.raises(DataError, match="'train'"):
            _check_loss(bad, flat, "train")
