"""physlm.text: the word-level tokenizer of the text worlds (split rules, HF parity, round trip)."""

from __future__ import annotations

import pytest

from physlm.errors import DataError
from physlm.text import TextVocab, split_words
from physlm.worlds.igsm.text import igsm_prompt, igsm_sequence, igsm_vocab, parse_generation

NAMES = ["Penguin Beach", "Giraffe", "Sea-lion Rock", "Animal", "O'Hara Park"]
TEXT = ("The number of each Penguin Beach's Giraffe equals 6 more than each Sea-lion Rock's Animal. "
        "How many Giraffe does Penguin Beach have?")
SOLUTION = "Define Penguin Beach's Giraffe as t; R = a + b = 1 + 2 = 3; so t = 6 + R = 6 + 3 = 9."


def test_split_rules() -> None:
    assert split_words("Penguin Beach's Giraffe equals 6.") == ["Penguin", "Beach", "'s", "Giraffe", "equals", "6", "."]
    assert split_words("O'Hara Park's x; y?") == ["O'Hara", "Park", "'s", "x", ";", "y", "?"]
    assert split_words("[PROB] a [SOL]") == ["[PROB]", "a", "[SOL]"]


def test_round_trip_and_hf_parity(tmp_path) -> None:
    vocab = igsm_vocab(NAMES)
    text = igsm_sequence(TEXT, SOLUTION, 9)
    ids = vocab.encode(text)
    assert vocab.decode(ids) == text
    assert vocab.tokenizer().encode(text).ids == ids
    vocab.save(tmp_path / "tokenizer.json")
    assert TextVocab.load(tmp_path / "tokenizer.json") == vocab


def test_names_are_single_tokens_longest_first() -> None:
    vocab = igsm_vocab(NAMES + ["Ice Cream", "Ice Cream Sandwich", "Cream"])
    text = "each Ice Cream Sandwich's Cream equals each Ice Cream's Penguin Beach."
    assert vocab.split(text) == ["each", "Ice Cream Sandwich", "'s", "Cream", "equals", "each", "Ice Cream", "'s", "Penguin Beach", "."]
    assert vocab.tokenizer().encode(text).ids == vocab.encode(text)
    words = igsm_vocab(NAMES, units="words")
    assert words.split("each Penguin Beach's Giraffe.") == ["each", "Penguin", "Beach", "'s", "Giraffe", "."]
    assert "Penguin Beach" not in words.symbols and "Penguin Beach" in igsm_vocab(NAMES).symbols
    with pytest.raises(ValueError, match="units"):
        igsm_vocab(NAMES, units="letters")


def test_vocab_is_fixed_then_sorted_words() -> None:
    vocab = igsm_vocab(NAMES, units="words")
    assert vocab.symbols[:2] == ("<bos>", "<eos>")
    assert all(str(n) in vocab.symbols for n in range(23))
    assert igsm_vocab(reversed(NAMES), units="words") == vocab  # order of the names does not matter
    with pytest.raises(DataError, match="Zebra"):
        vocab.encode("each Zebra")


def test_prompt_and_generation_parsing() -> None:
    assert igsm_prompt("P.") == "[PROB] P. [SOL]"
    assert parse_generation(" Define a's b as x; so x = 3. [ANS] 3") == ("Define a's b as x; so x = 3.", 3)
    assert parse_generation("Define a's b as x; so x = 3.") == ("Define a's b as x; so x = 3.", None)
    assert parse_generation("so x = 3. [ANS] 23")[1] is None
