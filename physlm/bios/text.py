"""Tokenization of the biography world (SPEC 4.1-4.3): the vocabulary, the training and prompt texts, and
the token positions of every attribute value.

The papers use GPT-2's BPE; here, as for iGSM (`physlm.text`), the world is closed, so `bio_vocab` lists
every token it can ever write: `<bos>`, `<eos>`, the Q-probing markers `<start>`, `<end>` (input
`<start> full name <end>`), then, sorted, the words (`physlm.text.split_words`) of every bioS template,
bioR phrase, QA template and of the glue `bior_entry` adds itself ("and", "who"), in lower case and with the
first letter capitalised where a sentence can start with them (pronouns included), the punctuation marks,
every month, day 1..28 and year 1900..2099 (a day or a year is one token: "October 2, 1996" is
`October | 2 | , | 1996`), and the pool values in one of two units:
- ``units="words"``: every word of every name part and value ("Massachusetts Institute of Technology" is
  four tokens, "Princeton, NJ" three). Closer to BPE: values share tokens ("University"), an answer takes
  several steps, and an attribute's first token does not identify it (P/Q-probing's first-token and
  whole-attribute tasks differ).
- ``units="values"``: every birth city, university, major, employer and work city is one token
  ("Princeton, NJ", "McDonald's"), and so is every name part. A tiny model has far fewer facts to spell
  out, but a value's first token is the value (except the birth date, still month | day | , | year), so
  first-token and whole-attribute accuracy coincide for the other five attributes.
A value of several words is one `TextVocab` phrase symbol in values mode ("Princeton, NJ" splits back into
itself); `TextVocab.load` reads a saved bio vocabulary.

Texts (the training packer adds `<bos>` and `<eos>`): a biography is the bios table's ``text``; a QA is
``"What is the birth city of X? Answer: Princeton, NJ."``; its prompt ends at ``"Answer:"``, so the model
writes `value | . | <eos>`. `value_token_spans` turns the bios table's character spans into token spans.

Tests (tests/test_biotext.py): on generated bioS (single, multi, permute, fullname, couple) and bioR text for
a few hundred people, in both units, every text encodes, decode(encode(t)) == t, each value's tokens inside a
biography and inside its QA answer are exactly the value encoded alone, the QA prompt's tokens are a prefix
of the QA's, and the HF tokenizer saved to tokenizer.json encodes alike; every template of every attribute
is also checked with every value of that attribute. This module never imports torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import polars as pl

from physlm.errors import DataError
from physlm.text import ATTACHED, TextVocab, split_words
from physlm.tokenize import BOS, EOS
from physlm.bios.people import ATTRIBUTES, DAYS, FIRST_YEAR, LAST_YEAR, MONTHS, Pools, Referent, Templates
from physlm.bios.biographies import render

__all__ = ["START", "END", "ANSWER", "UNITS", "bio_vocab", "bio_texts", "qa_text", "qa_prompt",
           "name_probe_text", "spans_of", "token_offsets", "value_token_spans", "check_answers_intact"]

START, END = "<start>", "<end>"
ANSWER = "Answer:"  # every QA answer template is "Answer: {V}."
UNITS = ("words", "values")
GLUE = ("and", "who")  # words bior_entry writes itself when it merges two attributes into one sentence


# ------------------------------------------------------------------------------------------ vocabulary


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def _template_words(templates: Templates, pronouns: Iterable[Referent]) -> set[str]:
    """Every word the templates write around the values, each template rendered with every pronoun set
    (values left empty); sentence openers also with their first letter capitalised."""
    openers = [*(t for bank in templates.bios.values() for t in bank),
               *(t for bank in templates.lead.values() for t in bank),
               *(t for bank in templates.connective.values() for t in bank),
               *(t for pair in templates.qa.values() for t in pair),
               *("{S} " + t for bank in templates.vp.values() for t in bank),
               *("{S} " + t for bank in templates.pairs.values() for t in bank)]
    inner = [t for bank in templates.appos.values() for t in bank]
    empty = dict.fromkeys((*ATTRIBUTES, "N", "V"), "")  # QA templates name {N} and {V}
    words = set(GLUE)
    for ref in pronouns:
        for template in openers + inner:
            text = render(template, ref, empty).text
            words.update(split_words(text))
            if template in openers:
                words.update(split_words(_capitalised(text)))
    return words


def _pool_values(pools: Pools) -> set[str]:
    return {*pools.cities, *pools.universities, *pools.majors, *pools.employers, *pools.headquarters.values()}


def bio_vocab(pools: Pools, templates: Templates, units: str = "words") -> TextVocab:
    """The bio world's vocabulary (module docstring): specials and markers, then every other symbol sorted."""
    if units not in UNITS:
        raise ValueError(f"bio_vocab: units must be one of {UNITS}, got {units!r}")
    names = {*pools.first_names, *pools.middle_names, *pools.last_names}
    dates = {*MONTHS, *(str(d) for d in range(1, DAYS + 1)), *(str(y) for y in range(FIRST_YEAR, LAST_YEAR + 1))}
    values = _pool_values(pools) | names
    if units == "words":
        values = {w for v in values for w in split_words(v)}
    fixed = (BOS, EOS, START, END)
    rest = _template_words(templates, pools.pronouns) | dates | set(ATTACHED) | values
    return TextVocab(fixed + tuple(sorted(rest - set(fixed))))


# ------------------------------------------------------------------------------------------------ texts


def bio_texts(frame: pl.DataFrame) -> list[str]:
    """The biographies of a bios table (bios_frame / bior_frame / import_bios), in row order."""
    return frame["text"].to_list()


def qa_text(question: str, answer: str) -> str:
    """One QA's training text: ``"What is the birth city of X? Answer: Princeton, NJ."``."""
    return f"{question} {answer}"


def qa_prompt(question: str) -> str:
    """The evaluation prompt (after `<bos>`): the question and ``"Answer:"``."""
    return f"{question} {ANSWER}"


def name_probe_text(full_name: str) -> str:
    """Q-probing's input: ``"<start> Anya Briar Forger <end>"``."""
    return f"{START} {full_name} {END}"


# ------------------------------------------------------------------------------------------------ spans


def spans_of(row: Mapping[str, int]) -> dict[str, tuple[int, int]]:
    """The character span of each attribute in a bios table row (``<attribute>_start`` / ``_end``)."""
    return {a: (row[f"{a}_start"], row[f"{a}_end"]) for a in ATTRIBUTES}


def token_offsets(vocab: TextVocab, text: str) -> list[tuple[int, int]]:
    """The character span of each token of ``vocab.encode(text)`` in ``text``."""
    offsets, pos = [], 0
    for token in vocab.split(text):
        start = None
        for word in split_words(token):
            while text[pos].isspace():  # only white space lies between words
                pos += 1
            start = pos if start is None else start
            pos += len(word)
        offsets.append((start, pos))
    return offsets


def value_token_spans(vocab: TextVocab, text: str, spans: Mapping[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """{attribute: (first token, end token)}: the tokens ``first .. end-1`` of ``vocab.encode(text)`` (no
    `<bos>`) are the attribute's value. DataError if a span does not start and end on token boundaries."""
    offsets = token_offsets(vocab, text)
    starts = {s: k for k, (s, _) in enumerate(offsets)}
    ends = {e: k + 1 for k, (_, e) in enumerate(offsets)}
    out = {}
    for attribute, (start, end) in spans.items():
        if start not in starts or end not in ends or starts[start] >= ends[end]:
            raise DataError(f"the {attribute} span {start}:{end} ({text[start:end]!r}) does not align with token "
                            f"boundaries in {text[:80]!r}")
        out[attribute] = (starts[start], ends[end])
    return out


def check_answers_intact(
    vocab: TextVocab, texts: Sequence[str], spans: Sequence[Mapping[str, tuple[int, int]]]
) -> None:
    """DataError unless each value's tokens inside each text are the value's tokens alone."""
    for text, found in zip(texts, spans):
        ids = vocab.encode(text)
        for attribute, (first, end) in value_token_spans(vocab, text, found).items():
            start, stop = found[attribute]
            if ids[first:end] != vocab.encode(text[start:stop]):
                raise DataError(f"the {attribute} {text[start:stop]!r} tokenizes differently inside {text[:80]!r}")
