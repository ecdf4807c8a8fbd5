"""physlm.bios.text: the bio vocabulary covers every generated text in both units, values stay the same tokens
inside biographies and QA answers as alone, token spans match the character spans, QA prompts are prefixes
of QA texts, and the saved HF tokenizer encodes alike."""

from pathlib import Path

import pytest

from physlm.bios.text import (
    ANSWER, END, START, UNITS, bio_texts, bio_vocab, check_answers_intact, name_probe_text, qa_prompt,
    qa_text, spans_of, token_offsets, value_token_spans,
)
from physlm.errors import DataError
from physlm.text import TextVocab
from physlm.tokenize import BOS, EOS
from physlm.bios import biographies
from physlm.bios import people as bio

POOLS, TEMPLATES = bio.load_pools(), bio.load_templates()
SPEC = bio.BioSpec(people=300, seed=7)
PEOPLE = bio.make_people(SPEC)
VARIANTS = ("single", "multi2+permute+fullname", "single+permute2", "multi2+couple")


@pytest.fixture(scope="module", params=UNITS)
def vocab(request: pytest.FixtureRequest) -> TextVocab:
    return bio_vocab(POOLS, TEMPLATES, request.param)


@pytest.fixture(scope="module")
def frames() -> list:
    bios = [biographies.bios_frame(PEOPLE, SPEC, bio.parse_variant(v)) for v in VARIANTS]
    bior = [biographies.bior_frame(PEOPLE, SPEC, bio.parse_variant(v)) for v in ("multi2", "single+fullname")]
    return bios + bior


@pytest.mark.parametrize("units", UNITS)
def test_vocab_is_specials_then_sorted_and_deterministic(units: str) -> None:
    vocab = bio_vocab(POOLS, TEMPLATES, units)
    assert vocab.symbols[:4] == (BOS, EOS, START, END)
    assert list(vocab.symbols[4:]) == sorted(vocab.symbols[4:])
    assert bio_vocab(POOLS, TEMPLATES, units).symbols == vocab.symbols
    with pytest.raises(ValueError, match="units"):
        bio_vocab(POOLS, TEMPLATES, "letters")


def test_units_decide_what_one_token_is() -> None:
    words, values = bio_vocab(POOLS, TEMPLATES, "words"), bio_vocab(POOLS, TEMPLATES, "values")
    assert words.split("Princeton, NJ") == ["Princeton", ",", "NJ"]
    assert values.split("Princeton, NJ") == ["Princeton, NJ"]
    split = values.split("worked for McDonald's in Chicago, IL.")
    assert split == ["worked", "for", "McDonald's", "in", "Chicago, IL", "."]
    assert len(words.encode("Massachusetts Institute of Technology")) == 4
    for vocab in (words, values):  # a date is month | day | , | year in both units
        assert vocab.split("October 2, 1996") == ["October", "2", ",", "1996"]
        assert {"1900", "2099", "1", "28"} <= set(vocab.symbols)


def test_every_generated_text_encodes_and_keeps_its_values_intact(vocab: TextVocab, frames: list) -> None:
    for frame in frames:
        texts = bio_texts(frame)
        spans = [spans_of(row) for row in frame.iter_rows(named=True)]
        check_answers_intact(vocab, texts, spans)
        names = [PEOPLE[p].full_name for p in frame["person"]]
        check_answers_intact(vocab, texts, [{"name": (t.index(n), t.index(n) + len(n))} for t, n in zip(texts, names)])
        assert all(vocab.decode(vocab.encode(t)) == t for t in texts)


def test_value_token_spans_are_the_value_tokens(vocab: TextVocab, frames: list) -> None:
    row = frames[1].row(5, named=True)
    found = value_token_spans(vocab, row["text"], spans_of(row))
    ids = vocab.encode(row["text"])
    for attribute, (first, end) in found.items():
        assert vocab.decode(ids[first:end]) == PEOPLE[row["person"]].value(attribute)
    assert [b for (_, b) in token_offsets(vocab, row["text"])][-1] == len(row["text"])


def test_misaligned_span_is_an_error(vocab: TextVocab) -> None:
    text = "She was born in Princeton, NJ."
    start = text.index("Princeton")
    with pytest.raises(DataError, match="birth_city span"):
        value_token_spans(vocab, text, {"birth_city": (start + 1, start + 13)})  # starts inside a word
    with pytest.raises(DataError, match="birth_city span"):
        value_token_spans(vocab, text, {"birth_city": (start, start + 5)})  # ends inside a word
    assert value_token_spans(vocab, text, {"birth_city": (start, start + 13)})["birth_city"][0] == 4
    if vocab.split(text)[4] == "Princeton, NJ":  # values: the city is one token, its first word is no token
        with pytest.raises(DataError, match="birth_city span"):
            value_token_spans(vocab, text, {"birth_city": (start, start + 9)})


def test_qa_prompt_is_a_prefix_and_the_answer_follows_it(vocab: TextVocab) -> None:
    assert all(answer.startswith(ANSWER + " {V}") for _, answer in TEMPLATES.qa.values())
    qa = biographies.qa_frame(PEOPLE)
    for question, answer, value in qa.select("question", "answer", "value").iter_rows():
        prompt = vocab.encode(qa_prompt(question))
        assert vocab.encode(qa_text(question, answer)) == prompt + vocab.encode(value) + [vocab.id(".")]


def test_name_probe_input(vocab: TextVocab) -> None:
    person = PEOPLE[3]
    assert vocab.split(name_probe_text(person.full_name)) == [START, person.first, person.middle, person.last, END]


def test_every_template_with_every_value(vocab: TextVocab) -> None:
    """Each bioS/bioR phrase of an attribute, rendered with the values of that attribute in turn (every
    template at least 3 times, every value at least once), keeps the value's tokens."""
    named = bio.Referent.named(PEOPLE[0].full_name)
    others = {a: PEOPLE[0].value(a) for a in bio.ATTRIBUTES}
    pools = {"birth_city": POOLS.cities, "university": POOLS.universities, "major": POOLS.majors,
             "employer": POOLS.employers, "work_city": sorted(set(POOLS.headquarters.values())),
             "birth_date": sorted({p.birth_date for p in PEOPLE})}
    for a, values in pools.items():
        phrases = [*TEMPLATES.bios[a], *("{S} " + t for t in TEMPLATES.vp[a]),
                   *(t + ", {S} [was|were] born" for t in TEMPLATES.lead[a]),
                   *("{S}, " + t + ", [was|were] born" for t in TEMPLATES.appos[a]),
                   *("{S} " + t for pair, bank in TEMPLATES.pairs.items() if a in pair for t in bank)]
        texts, spans = [], []
        for k in range(max(3 * len(phrases), len(values))):
            done = biographies.render(phrases[k % len(phrases)], named, others | {a: values[k % len(values)]})
            texts.append(done.text[:1].upper() + done.text[1:])
            spans.append(done.spans)
        check_answers_intact(vocab, texts, spans)


def test_hf_tokenizer_encodes_alike_and_round_trips(vocab: TextVocab, frames: list, tmp_path: Path) -> None:
    qa = biographies.qa_frame(PEOPLE[:50])
    texts = bio_texts(frames[0].head(50)) + bio_texts(frames[-1].head(50))
    texts += [qa_text(q, a) for q, a in qa.select("question", "answer").iter_rows()]
    tok = vocab.tokenizer()
    assert [e.ids for e in tok.encode_batch(texts)] == [vocab.encode(t) for t in texts]
    vocab.save(tmp_path / "tokenizer.json")
    assert TextVocab.load(tmp_path / "tokenizer.json") == vocab


def test_unknown_word_is_an_error(vocab: TextVocab) -> None:
    with pytest.raises(DataError, match="Zanzibar"):
        vocab.encode("She was born in Zanzibar.")
