"""The biography world's texts and tables (SPEC 4.1): bioS entries from templates, bioR paraphrases, imported
biographies, and the people / bios / qa tables.

bioS: one sentence per attribute, the full name in the first sentence and the pronoun afterwards.
``Variant`` (``parse_variant("multi5+permute+fullname")``) selects: ``entries`` M (multiM: templates
re-drawn per entry), ``permute`` (shuffled sentence order), ``copies`` P (permuteP: P shuffled copies of each
entry), ``fullname`` (the name instead of every pronoun) and ``couple`` (the ordered pairs birth date ->
birth city, university -> major, employer -> work city, the pairs shuffled). Un-permuted entries use
``BioSpec.order``: the paper's order by default, ``CODE_ORDER`` for the release's (work city before
employer, SPEC 9.3). bioR (the paper's LLM rewrites cannot be reproduced offline): ``bior_frame`` writes
paraphrases from phrase banks (shuffled attribute order, two attributes merged into one sentence,
connectives, relative clauses, appositions, fronted phrases, and the bioS templates), and ``import_bios``
reads externally written biographies, checking that each states its person's name and attributes verbatim.

Template syntax: ``{V}`` is the value (pair phrases name the attribute, ``{major}``); ``{S}``, ``{O}``, ``{P}``
the person as subject, object, possessive: the full name ("Anya Briar Forger", "Anya Briar Forger's") or the
pronoun set; ``[is|are]`` the verb form after a singular / plural subject (a name is singular, "they" plural).
Templates contain no other reference to the person, so a fullname entry contains no pronoun at all.

Tables (polars):
- people, one row per person: ``id`` (0..N-1), ``first``, ``middle``, ``last``, ``full_name``,
  ``birth_year``, ``birth_month``, ``birth_day``, ``birth_date`` (the text), ``birth_city``, ``university``,
  ``major``, ``employer``, ``work_city``, ``pronoun`` (subject form: he, she or they).
- bios, one row per biography: ``person`` (id), ``entry`` (0.. per person; bioS: entry e, copy c is
  e * P + c), ``text`` (sentences joined by one space), ``order`` (the attributes in order of appearance: for
  bioS the sentence order), and for each attribute ``<attribute>_start`` / ``<attribute>_end``: the character
  span of its value in ``text`` (every attribute appears exactly once in a generated entry; P-probing reads the
  token before ``_start``).
- qa, six rows per person: ``person``, ``attribute``, ``question`` ("What is the birth city of Anya Briar
  Forger?"), ``answer`` ("Answer: Princeton, NJ."), ``value`` (the bare value, for exact match) and ``split``:
  ``P_train`` for the first half of the ids (id < N // 2), ``P_test`` for the rest.

Oracles: ``tests/test_bio.py`` parses every bioS sentence with its own template matcher and every bioR text
with a pool scan (each value of the person present, no other value of any pool), and checks spans, QA,
template and order coverage, the pools, and the import checks. This module never imports torch.
"""
from __future__ import annotations

import functools
import random
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from physlm.errors import DataError
from physlm.io import read_parquet
from physlm.bios.people import ATTRIBUTES, COUPLES, BioSpec, Person, Referent, Templates, Variant, load_templates


# ---------------------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class Text:
    """Rendered text and the character span of each attribute value in it."""

    text: str
    spans: Mapping[str, tuple[int, int]] = field(default_factory=dict)


_SLOT = re.compile(r"\{(\w+)\}|\[([^|\]]*\|[^\]]*)\]")
_PERSON = {"S": "subject", "O": "object", "P": "possessive"}


@functools.lru_cache(maxsize=None)
def _parse(template: str) -> tuple[tuple[str, str, str], ...]:
    """(literal before the slot, slot kind, slot argument) triples; the last one has kind ''."""
    out, last = [], 0
    for match in _SLOT.finditer(template):
        name, verbs = match.groups()
        kind, arg = ("verb", verbs) if verbs is not None else ("person", _PERSON[name]) if name in _PERSON \
            else ("value", name)
        out.append((template[last:match.start()], kind, arg))
        last = match.end()
    return (*out, (template[last:], "", ""))


def render(template: str, ref: Referent, values: Mapping[str, str]) -> Text:
    """Fill a template's slots: the person as ``ref`` refers to it, ``{attribute}`` from ``values``."""
    parts: list[str] = []
    spans: dict[str, tuple[int, int]] = {}
    size = 0
    for literal, kind, arg in _parse(template):
        filled = ""
        if kind == "value":
            filled = values[arg]
            spans[arg] = (size + len(literal), size + len(literal) + len(filled))
        elif kind == "person":
            filled = getattr(ref, arg)
        elif kind == "verb":
            filled = arg.split("|")[ref.plural]
        parts += [literal, filled]
        size += len(literal) + len(filled)
    return Text("".join(parts), spans)


def _join(parts: Sequence[Text | str], sep: str = "") -> Text:
    chunks: list[str] = []
    spans: dict[str, tuple[int, int]] = {}
    size = -len(sep)
    for part in parts:
        size += len(sep)
        if isinstance(part, str):
            chunks.append(part)
            size += len(part)
            continue
        for a, (start, end) in part.spans.items():
            spans[a] = (size + start, size + end)
        chunks.append(part.text)
        size += len(part.text)
    return Text(sep.join(chunks), spans)


def _sentence(*parts: Text | str) -> Text:
    """Parts joined and capitalised; a final period added unless present."""
    joined = parts[0] if len(parts) == 1 and isinstance(parts[0], Text) else _join(parts)
    text = joined.text[:1].upper() + joined.text[1:]
    return Text(text if text.endswith(".") else text + ".", joined.spans)


# --------------------------------------------------------------------------------------------- bioS


def bios_entry(person: Person, chosen: Mapping[str, str], order: Sequence[str], fullname: bool) -> Text:
    """One bioS entry: ``chosen[attribute]`` rendered in ``order``; the full name first, then the pronoun."""
    name = Referent.named(person.full_name)
    return _join([_sentence(render(chosen[a], name if k == 0 or fullname else person.pronoun, {a: person.value(a)}))
                  for k, a in enumerate(order)], " ")


def _bios_order(variant: Variant, fixed: Sequence[str], rng: random.Random) -> tuple[str, ...]:
    if variant.couple:
        pairs = list(COUPLES)
        rng.shuffle(pairs)
        return tuple(a for pair in pairs for a in pair)
    order = list(fixed)
    if variant.permute:
        rng.shuffle(order)
    return tuple(order)


def bios_frame(people: Sequence[Person], spec: BioSpec, variant: Variant) -> pl.DataFrame:
    """The bioS table (module docstring) of ``variant`` for ``people``."""
    templates = load_templates()
    rows = []
    for person in people:
        for e in range(variant.entries):
            rng = random.Random(f"bioS:{spec.seed}:{person.id}:{e}")
            chosen = {a: rng.choice(templates.bios[a]) for a in ATTRIBUTES}
            for c in range(variant.copies):
                order = _bios_order(variant, spec.order, random.Random(f"bioS-order:{spec.seed}:{person.id}:{e}:{c}"))
                rows.append((person.id, e * variant.copies + c, bios_entry(person, chosen, order, variant.fullname)))
    return _bio_frame(rows)


# --------------------------------------------------------------------------------------------- bioR


def _groups(order: Sequence[str], rng: random.Random) -> list[tuple[str, ...]]:
    """Consecutive attributes, each group of one or (with probability 1/2) two becomes one sentence."""
    groups: list[tuple[str, ...]] = []
    k = 0
    while k < len(order):
        size = 2 if k + 1 < len(order) and rng.random() < 0.5 else 1
        groups.append(tuple(order[k:k + size]))
        k += size
    return groups


def _one(a: str, person: Person, t: Templates, rng: random.Random, main: Referent) -> Text:
    values = {a: person.value(a)}
    if rng.random() < 0.4:
        return _sentence(render(rng.choice(t.bios[a]), main, values))
    opener = rng.choice(t.connective[a]) + " " if rng.random() < 0.4 else ""
    return _sentence(opener, render("{S} " + rng.choice(t.vp[a]), main, values))


def _two(a: str, b: str, person: Person, t: Templates, rng: random.Random, main: Referent, later: Referent,
         named: bool) -> Text:
    values = {a: person.value(a), b: person.value(b)}
    vp_a, vp_b = rng.choice(t.vp[a]), rng.choice(t.vp[b])
    forms = [
        lambda: _sentence(render(f"{{S}} {vp_a} and {vp_b}", main, values)),
        lambda: _sentence(render(f"{{S}} {vp_a}", main, values), ", and ", render(f"{{S}} {vp_b}", later, values)),
        lambda: _sentence(render(f"{{S}} {vp_a}", main, values), "; ", render(f"{{S}} {vp_b}", later, values)),
        lambda: _sentence(render(rng.choice(t.lead[a]), main, values), ", ", render(f"{{S}} {vp_b}", main, values)),
    ]
    if named:  # the subject is the full name: a relative clause or an apposition may follow it
        forms += [lambda: _sentence(render(f"{{S}}, who {vp_a}, {vp_b}", main, values)),
                  lambda: _sentence(render(f"{{S}}, {rng.choice(t.appos[a])}, {vp_b}", main, values))]
    pair = t.pairs.get((a, b)) or t.pairs.get((b, a))
    if pair:
        forms.append(lambda: _sentence(render("{S} " + rng.choice(pair), main, values)))
    return rng.choice(forms)()


def bior_entry(person: Person, rng: random.Random, fullname: bool = False) -> Text:
    """One bioR paraphrase: attributes in random order, one or two per sentence, every value exactly once and
    verbatim; the full name in the first sentence (and everywhere with ``fullname``), the pronoun elsewhere."""
    t = load_templates()
    name = Referent.named(person.full_name)
    later = name if fullname else person.pronoun
    order = list(ATTRIBUTES)
    rng.shuffle(order)
    sentences = []
    for k, group in enumerate(_groups(order, rng)):
        main = name if k == 0 else later
        sentences.append(_one(group[0], person, t, rng, main) if len(group) == 1
                         else _two(*group, person, t, rng, main, later, named=k == 0 or fullname))
    return _join(sentences, " ")


def bior_frame(people: Sequence[Person], spec: BioSpec, variant: Variant) -> pl.DataFrame:
    """The bioR table (bios columns) of ``variant`` (multiM and fullname only) for ``people``."""
    if variant.permute or variant.couple:
        raise ValueError(f"bioR variant {variant.name!r}: bioR supports only multiM and fullname")
    return _bio_frame([(p.id, e, bior_entry(p, random.Random(f"bioR:{spec.seed}:{p.id}:{e}"), variant.fullname))
                       for p in people for e in range(variant.entries)])


# ------------------------------------------------------------------------------------------- tables


def people_frame(people: Sequence[Person]) -> pl.DataFrame:
    text = ("first", "middle", "last", "full_name", "birth_date", *ATTRIBUTES[1:])
    columns: dict[str, list[Any]] = {"id": [p.id for p in people]}
    columns |= {c: [p.value(c) for p in people] for c in text}
    columns |= {c: [getattr(p, c) for p in people] for c in ("birth_year", "birth_month", "birth_day")}
    columns["pronoun"] = [p.pronoun.subject for p in people]
    schema = {"id": pl.Int64, **{c: pl.Utf8 for c in text}, "birth_year": pl.Int16, "birth_month": pl.Int8,
              "birth_day": pl.Int8, "pronoun": pl.Utf8}
    order = ["id", "first", "middle", "last", "full_name", "birth_year", "birth_month", "birth_day", "birth_date",
             *ATTRIBUTES[1:], "pronoun"]
    return pl.DataFrame(columns, schema=schema).select(order)


def _bio_frame(rows: Sequence[tuple[int, int, Text]]) -> pl.DataFrame:
    texts = [t for _, _, t in rows]
    columns: dict[str, list[Any]] = {
        "person": [p for p, _, _ in rows], "entry": [e for _, e, _ in rows], "text": [t.text for t in texts],
        "order": [sorted(t.spans, key=t.spans.__getitem__) for t in texts]}
    schema: dict[str, Any] = {"person": pl.Int64, "entry": pl.Int32, "text": pl.Utf8, "order": pl.List(pl.Utf8)}
    for a in ATTRIBUTES:
        columns[f"{a}_start"] = [t.spans[a][0] for t in texts]
        columns[f"{a}_end"] = [t.spans[a][1] for t in texts]
        schema |= {f"{a}_start": pl.Int32, f"{a}_end": pl.Int32}
    return pl.DataFrame(columns, schema=schema)


def qa_frame(people: Sequence[Person]) -> pl.DataFrame:
    """Six questions per person; ids below len(people) // 2 are P_train, the rest P_test."""
    templates = load_templates().qa
    half = len(people) // 2
    rows = [(p.id, a, templates[a][0].replace("{N}", p.full_name), templates[a][1].replace("{V}", p.value(a)),
             p.value(a), "P_train" if p.id < half else "P_test") for p in people for a in ATTRIBUTES]
    names = ["person", "attribute", "question", "answer", "value", "split"]
    return pl.DataFrame(rows, schema={"person": pl.Int64, **{n: pl.Utf8 for n in names[1:]}}, orient="row")


# ------------------------------------------------------------------------------------------- import


def _find(value: str, text: str, start: int = 0) -> int:
    """Start of the first whole-word occurrence of ``value`` in ``text`` at or after ``start``, or -1."""
    match = re.compile(r"(?<![A-Za-z0-9])" + re.escape(value) + r"(?![A-Za-z0-9])").search(text, start)
    return match.start() if match else -1


def _locate(person: Person, text: str) -> dict[str, tuple[int, int]]:
    """Span of each attribute's first occurrence; attributes sharing a value (birth city = work city) take
    successive occurrences when there are several."""
    spans: dict[str, tuple[int, int]] = {}
    for a in ATTRIBUTES:
        value = person.value(a)
        after = max((s + 1 for b, (s, _) in spans.items() if person.value(b) == value), default=0)
        start = _find(value, text, after)
        start = start if start >= 0 else _find(value, text)
        spans[a] = (start, start + len(value))
    return spans


def import_bios(path: str | Path, people: Sequence[Person]) -> pl.DataFrame:
    """Biographies written elsewhere (a Parquet file with columns ``person``, ``text``) as a bios table.

    Every text must contain its person's full name and all six attribute values verbatim (as whole words);
    otherwise DataError names the first bad row. ``entry`` numbers a person's texts in file order.
    """
    frame = read_parquet(path, ["person", "text"])
    by_id = {p.id: p for p in people}
    rows, entries = [], Counter[int]()
    for k, (pid, text) in enumerate(frame.iter_rows()):
        person = by_id.get(pid)
        if person is None or not isinstance(text, str):
            what = f"person {pid!r} is not in the people table" if person is None else "the text is missing"
            raise DataError(f"{path}: row {k}: {what}")
        missing = next((a for a in ("full_name", *ATTRIBUTES) if _find(person.value(a), text) < 0), None)
        if missing is not None:
            raise DataError(f"{path}: row {k} (person {pid}): the text lacks the {missing} "
                            f"{person.value(missing)!r} (every attribute must appear verbatim)")
        rows.append((pid, entries[pid], Text(text, _locate(person, text))))
        entries[pid] += 1
    return _bio_frame(rows)
