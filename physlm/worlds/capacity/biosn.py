"""bioS(N) and bioS^simple(N), Part 3.3's biography data for the capacity measurement (SPEC 6.1, 6.2), one
person and one writing at a time. No torch here.

The people are Part 3.1's bioS people (`physlm.bios.people.make_people`: unique full names drawn by rejection,
birth date, birth city, university, major, employer, the work city derived from the employer, a pronoun set),
over the first k values of each pool (`PoolSizes`). A person's paragraph is a bioS entry
(`physlm.bios.biographies.bios_entry`: one sentence per attribute from the template banks, the full name in the
first sentence, the pronoun afterwards). Everything is a function of the seed:

- the people: `make_people(BioSpec(N, seed, pools, pronouns))` (person i depends on (seed, i) and on the names of
  people 0..i-1, never on N, so the first n people of a dataset are `people(spec, n)`);
- writing w of person i (`writing`): bioS re-draws the sentence order and the six templates for every writing
  (SPEC 6.1: every exposure re-samples templates and order); bioS^simple has one fixed entry per person, its
  templates drawn once and its sentences in `BioSpec`'s (the paper's) order, so every writing is the same text.
  The draws (`draws`) are counter-based: twelve splitmix64 values of (seed, i, w) (bioS^simple: w = 0), so a
  whole round of N people is drawn at once in numpy (the streamed split's token counts, `Lengths`) and one person
  alone gives the same draws.

**The first sentence opens with the person.** Its template is drawn from those of its attribute that start with
`{S}` or `{P}` (`OPENING`: 36 of the 46 birth-date templates, 43/49, 43/49, 49/52, 42/47, 45/48); the other five
sentences draw from the whole bank. Some templates put the value first ("{V} is where {S} was born"): a
paragraph opening that way would make the name follow knowledge about the person, and p1 (the name generated
from `<bos>`) would be conditioned on it. So every paragraph is `<bos> first middle last ...`, the name's three
tokens first, which is also what the train step's exposure count reads.

**S0**, the attribute values a person can have (SPEC 6.2), is counted from the pools the data uses: birth dates
(12 months x 28 days x 200 years) x distinct birth cities x universities x majors x employers (the work city
follows from the employer) x the pronoun's choices: 2 for `pronouns: parity` (the released code's he / she by id
parity: a name does not reveal the person's index, so the pronoun is one bit the model must store per person;
with the full pools S0 is the paper's 2 x (12 x 28 x 200) x 200 x 300 x 100 x 263, 47.6 bits) and 3 for
`random` (he / she / they). N0 = first x middle x last names.

**Spans.** `writing` returns a `physlm.bios.biographies.Text`: the paragraph and the character span of each of
the six values, and of `pronoun`, the first pronoun of the paragraph (the first word of the second sentence's
reference to the person: "He", "his", "them", ...): it is where the gender S0 counts is first stated (the later
pronouns repeat it). `encode` turns them into token spans (`physlm.bios.text.value_token_spans`).
"""

from __future__ import annotations

import functools
import re
from dataclasses import asdict, dataclass, field
from math import prod
from types import MappingProxyType

import numpy as np

from physlm.bios.biographies import Text, bios_entry, render
from physlm.bios.people import (
    ATTRIBUTES,
    DAYS,
    FIRST_YEAR,
    LAST_YEAR,
    MONTHS,
    PAPER_ORDER,
    BioSpec,
    Person,
    PoolSizes,
    Referent,
    load_pools,
    load_templates,
    make_people,
)
from physlm.bios.text import bio_vocab, value_token_spans
from physlm.errors import DataError
from physlm.text import TextVocab

KINDS = ("bioS", "bioS_simple")
PRONOUNS = {"parity": 2, "random": 3}  # the pronoun sets a person can have (physlm.bios.people.make_people)
PRONOUN = "pronoun"  # the span key of the paragraph's first pronoun
NAME = "name"  # the token span key of the full name (the first three tokens)
PARTS = (*ATTRIBUTES, PRONOUN)  # what p2 sums, in this order


@dataclass(frozen=True)
class Spec:
    """Everything a bioS(N) / bioS^simple(N) dataset is a function of."""

    N: int  # people
    simple: bool = False  # bioS^simple: one fixed entry per person
    pools: PoolSizes = field(default_factory=PoolSizes)  # the first k values of each pool
    pronouns: str = "parity"  # parity: he / she by id parity (the released code); random: he / she / they
    seed: int = 0

    def __post_init__(self) -> None:
        if self.pronouns not in PRONOUNS:
            raise ValueError(f"pronouns {self.pronouns!r} must be one of {', '.join(PRONOUNS)}")
        if self.N < 1:
            raise ValueError(f"N = {self.N} must be at least 1")
        load_pools(self.pools)  # ValueError naming a bad pool size
        if self.N > self.N0:
            raise ValueError(f"N = {self.N} exceeds N0 = {self.N0}, the distinct full names of the pools")

    @property
    def data(self) -> str:
        return "bioS_simple" if self.simple else "bioS"

    @property
    def N0(self) -> int:
        p = load_pools(self.pools)
        return len(p.first_names) * len(p.middle_names) * len(p.last_names)

    @property
    def factors(self) -> dict[str, int]:
        """The values each attribute can take (the work city follows from the employer) and the pronoun's."""
        p = load_pools(self.pools)
        return {"birth_date": len(MONTHS) * DAYS * (LAST_YEAR - FIRST_YEAR + 1), "birth_city": len(set(p.cities)),
                "university": len(set(p.universities)), "major": len(set(p.majors)), "employer": len(set(p.employers)),
                PRONOUN: PRONOUNS[self.pronouns]}

    @property
    def S0(self) -> int:
        return prod(self.factors.values())

    def bio(self, people: int | None = None) -> BioSpec:
        return BioSpec(people=people or self.N, seed=self.seed, pools=self.pools, pronouns=self.pronouns, order=PAPER_ORDER)

    def resolved(self) -> dict:
        """capacity.json: the data kind, N0, N, S0 and its factors, the pools, the pronoun choice, the seed."""
        return {"data": self.data, "N0": self.N0, "N": self.N, "S0": self.S0, "S0_factors": self.factors,
                "pools": asdict(self.pools), "pronouns": self.pronouns, "seed": self.seed}


def spec_of_json(found: dict, where: str) -> Spec:
    """capacity.json's content (`Spec.resolved`) as a Spec; DataError naming `where` when it is not one."""
    try:
        spec = Spec(N=found["N"], simple=found["data"] == "bioS_simple", pools=PoolSizes(**found["pools"]),
                    pronouns=found["pronouns"], seed=found["seed"])
    except (TypeError, ValueError, KeyError) as err:
        raise DataError(f"{where}: not a bioS spec ({err!r})") from None
    if found["data"] not in KINDS or (spec.N0, spec.S0) != (found.get("N0"), found.get("S0")):
        raise DataError(f"{where}: data {found['data']!r}, N0 {found.get('N0')} and S0 {found.get('S0')} are not those of"
                        f" its pools ({spec.N0}, {spec.S0})")
    return spec


def people(spec: Spec, count: int | None = None) -> list[Person]:
    """The dataset's first `count` people (all N by default): the same people whatever the count."""
    return make_people(spec.bio(count))


@functools.cache
def opening(attribute: str) -> tuple[str, ...]:
    """The templates of `attribute` that start with the person ({S} or {P}): the first sentence's."""
    return tuple(t for t in load_templates().bios[attribute] if t.startswith(("{S}", "{P}")))


@functools.cache
def _pronoun_words(ref: Referent) -> re.Pattern:
    words = {w for form in (ref.subject, ref.object, ref.possessive) for w in (form, form[:1].upper() + form[1:])}
    return re.compile(r"\b(?:" + "|".join(sorted(map(re.escape, words))) + r")\b")


_TAGS = {False: 0x6269_6F53_5F63_6170, True: 0x6269_6F53_5F73_696D}  # bioS, bioS_simple: the draws' stream tags
_GOLDEN = np.uint64(0x9E37_79B9_7F4A_7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on uint64 (wrapping arithmetic)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58_476D_1CE4_E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D0_49BB_1331_11EB)
    return x ^ (x >> np.uint64(31))


def draws(spec: Spec, persons: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Writing w's sentence order and templates for every person of `persons` at once (module docstring):
    (order [n, 6]: indices into ATTRIBUTES, sentence by sentence; template [n, 6]: each sentence's index into its
    attribute's bank, `opening(a)` for the first sentence). Counter-based: 12 splitmix64 values per (seed, person,
    w) (bioS^simple: w = 0 for every writing), so one person's draws are the same drawn alone or in a round of N."""
    if w < 0:
        raise ValueError(f"writing {w}: writings are numbered from 0")
    ids = np.asarray(persons, dtype=np.uint64).reshape(-1)
    head = _mix(np.full(len(ids), (spec.seed * 0x9E37_79B9 + _TAGS[spec.simple]) % 2**64, dtype=np.uint64))
    base = _mix(_mix(head + ids) + np.uint64(0 if spec.simple else w))
    keys = _mix(base[:, None] + np.arange(1, 13, dtype=np.uint64)[None, :] * _GOLDEN)  # [n, 12]
    order = (np.tile(np.asarray([ATTRIBUTES.index(a) for a in PAPER_ORDER]), (len(ids), 1)) if spec.simple
             else np.argsort(keys[:, :6], axis=1, kind="stable"))
    banks = load_templates().bios
    sizes = np.asarray([[len(opening(a)) for a in ATTRIBUTES], [len(banks[a]) for a in ATTRIBUTES]], dtype=np.uint64)
    rows = np.zeros(order.shape, dtype=np.int64)
    rows[:, 1:] = 1  # the first sentence draws from the opening templates
    template = (keys[:, 6:] % sizes[rows, order]).astype(np.int64)
    return order, template


def choices(spec: Spec, person: Person, w: int) -> tuple[list[str], dict[str, str]]:
    """Writing w's sentence order and template per attribute (`draws` for one person): what `writing` renders."""
    order, template = draws(spec, np.asarray([person.id]), w)
    banks = load_templates().bios
    attributes = [ATTRIBUTES[k] for k in order[0].tolist()]
    return attributes, {a: (opening(a) if k == 0 else banks[a])[t] for k, (a, t) in enumerate(zip(attributes, template[0].tolist()))}


def writing(spec: Spec, person: Person, w: int) -> Text:
    """Writing w (0, 1, ...) of `person`: the paragraph and the character spans of its six values and of its first
    pronoun (module docstring); a pure function of (spec.seed, person.id, w) and spec.simple."""
    order, chosen = choices(spec, person, w)
    entry = bios_entry(person, chosen, order, fullname=False)
    first = len(bios_entry(person, chosen, order[:1], fullname=False).text)  # the first sentence's end
    found = _pronoun_words(person.pronoun).search(entry.text, first)
    if found is None:
        raise ValueError(f"person {person.id}, writing {w}: no pronoun after the first sentence of {entry.text!r}")
    return Text(entry.text, MappingProxyType({**entry.spans, PRONOUN: found.span()}))


class Lengths:
    """The token count of any writing without writing it (what the streamed split's window table needs: every
    person's writing r, round after round). A paragraph's tokens are the sum over its six sentences of the
    template's own tokens, with the person as the name (first sentence) or the pronoun (the others), plus the
    value's tokens: a value encodes inside a paragraph as it does alone (physlm/bios/text.py, tested there), a full
    name is three tokens (`encode` checks it) and every pronoun form and verb choice one. The template counts are
    measured once per (template, attribute, name or pronoun) by encoding the template filled with a fixed value;
    the value counts once per person. tests/test_capacity_bios.py checks the sum against the encoded writings."""

    def __init__(self, spec: Spec, persons: list[Person], vocab: TextVocab) -> None:
        self.spec, self.persons, self.vocab = spec, persons, vocab
        self.values = np.asarray([sum(len(vocab.encode(p.value(a))) for a in ATTRIBUTES) for p in persons], dtype=np.int64)
        self._template: dict[tuple[str, str, bool], int] = {}

    def template(self, template: str, attribute: str, first: bool) -> int:
        key = (template, attribute, first)
        if key not in self._template:
            model = self.persons[0]
            value = model.value(attribute)
            text = bios_entry(model, {attribute: template}, [attribute], fullname=False).text if first else \
                render(template, model.pronoun, {attribute: value}).text.rstrip(".") + "."
            self._template[key] = len(self.vocab.encode(text)) - len(self.vocab.encode(value))
        return self._template[key]

    def tables(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per attribute, the own tokens of each opening template (first sentence) and of each template (later)."""
        if not hasattr(self, "_tables"):
            banks = load_templates().bios
            self._tables = ([np.asarray([self.template(t, a, True) for t in opening(a)], dtype=np.int64) for a in ATTRIBUTES],
                            [np.asarray([self.template(t, a, False) for t in banks[a]], dtype=np.int64) for a in ATTRIBUTES])
        return self._tables

    def of(self, i: int, w: int) -> int:
        """Own tokens (without <bos> / <eos>) of person i's writing w."""
        return int(self(w, np.asarray([i]))[0])

    def __call__(self, w: int, persons: np.ndarray | None = None) -> np.ndarray:
        """Own tokens of every person's writing w (of `persons`, default all, in that order), vectorised."""
        persons = np.arange(len(self.persons)) if persons is None else np.asarray(persons, dtype=np.int64)
        order, template = draws(self.spec, persons, w)
        first, later = self.tables()
        total = self.values[persons].copy()
        for k in range(order.shape[1]):
            for a in range(len(ATTRIBUTES)):
                rows = np.flatnonzero(order[:, k] == a)
                total[rows] += (first if k == 0 else later)[a][template[rows, k]]
        return total


@functools.lru_cache(maxsize=4)
def vocabulary(pools: PoolSizes, units: str) -> TextVocab:
    """The biography world's word-level vocabulary (`physlm.bios.text.bio_vocab`) of these pools."""
    return bio_vocab(load_pools(pools), load_templates(), units)


def name_ids(vocab: TextVocab, person: Person) -> list[int]:
    return [vocab.id(part) for part in (person.first, person.middle, person.last)]


def encode(vocab: TextVocab, person: Person, text: Text, spans: bool = True) -> tuple[list[int], dict[str, tuple[int, int]]]:
    """(token ids of the paragraph, {NAME, each attribute, PRONOUN: (first token, end token)}); DataError unless the
    paragraph opens with the person's three name tokens. Without `spans`, the ids and {} (the faster path)."""
    ids = vocab.encode(text.text)
    if ids[:3] != name_ids(vocab, person):
        raise DataError(f"person {person.id}: the paragraph does not open with the three name tokens: {text.text[:80]!r}")
    return ids, ({NAME: (0, 3)} | value_token_spans(vocab, text.text, text.spans) if spans else {})
