"""Part 3.1 QA evaluation (SPEC 4.1, 4.4): exact-match accuracy of generated answers, per split (P_train /
P_test), attribute and decoding (greedy; beam search, the paper's beam 4), plus first-token accuracy.

The model sees `<bos> question Answer:` (`physlm.bios.text.qa_prompt`) and writes `value . <eos>`. Reading the
answer back (`read_answer`): the generated tokens are cut at the first "." token or `<eos>`, whichever comes
first, and the tokens before the cut are decoded; a generation that reaches `max_new_tokens` without either
is decoded whole. No pool value contains "." (tests/test_evaluate_bio.py checks the pools), so the first "."
is the one that ends the answer. `exact_match`: the answer, stripped of surrounding white space, equals the
value exactly (case and punctuation included). First-token accuracy: the first generated token is the first
token of the value (for the birth date, the month), as in the probes' first-token tasks; with
`units="values"` it equals exact match for every attribute but the birth date.

tests/test_evaluate_bio.py trains a tiny GPT to memorise 8 QAs and checks that the scorer gives it 1.0,
greedy and beam, and a random model 0.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch

from physlm.artifacts import load_model
from physlm.io import Paths, read_parquet
from physlm.sampling import beam_search, generate
from physlm.text import TextVocab
from physlm.tokenize import Vocab
from physlm.worlds import Evaluated, generations_table
from physlm.bios.people import ATTRIBUTES, SPLITS
from physlm.bios.text import qa_prompt

__all__ = ["QAAttempt", "decoding_name", "answer_ids", "read_answer", "answer_qa", "exact_match", "score",
           "summarize", "answer_all", "qa_accuracy", "generation_rows", "accuracy_rows", "evaluate"]



@dataclass(frozen=True)
class QAAttempt:
    """One question answered once."""

    split: str  # P_train or P_test
    attribute: str
    decoding: str  # "greedy" or "beam<k>"
    person: int
    answer: str  # the answer read back (read_answer)
    correct: bool  # exact match with the value
    first_token_correct: bool  # the first generated token is the value's first token


def decoding_name(beams: int) -> str:
    return "greedy" if beams == 1 else f"beam{beams}"


def answer_ids(
    model: torch.nn.Module, vocab: TextVocab, questions: Sequence[str], *, beams: int, batch_size: int,
    max_new_tokens: int, desc: str | None = None,
) -> list[list[int]]:
    """The tokens each question's generation writes (`<eos>` included when written): greedy for beams=1,
    else beam search. `desc` names a progress bar (None: none)."""
    prompts = [[Vocab.bos_id, *vocab.encode(qa_prompt(q))] for q in questions]
    if beams == 1:
        return generate(model, prompts, max_new_tokens=max_new_tokens, temperature=0.0, eos_id=Vocab.eos_id, seed=0,
                        batch_size=batch_size, desc=desc)
    return beam_search(model, prompts, beams=beams, max_new_tokens=max_new_tokens, eos_id=Vocab.eos_id,
                       batch_size=batch_size, desc=desc)


def read_answer(vocab: TextVocab, ids: Sequence[int]) -> str:
    """The text of the tokens before the first "." or `<eos>` (module docstring)."""
    stops = {vocab.id("."), Vocab.eos_id}
    end = next((k for k, t in enumerate(ids) if t in stops), len(ids))
    return vocab.decode(ids[:end])


def answer_qa(
    model: torch.nn.Module, vocab: TextVocab, questions: Sequence[str], *, beams: int, batch_size: int,
    max_new_tokens: int,
) -> list[str]:
    """The answer the model gives to each question, read back by `read_answer`."""
    ids = answer_ids(model, vocab, questions, beams=beams, batch_size=batch_size, max_new_tokens=max_new_tokens)
    return [read_answer(vocab, row) for row in ids]


def exact_match(generated: str, value: str) -> bool:
    """The answer, stripped of surrounding white space, is exactly the value."""
    return generated.strip() == value


def score(
    model: torch.nn.Module, vocab: TextVocab, qa: pl.DataFrame, *, beams: int, batch_size: int, desc: str | None = None
) -> list[QAAttempt]:
    """Every row of a qa table (physlm.bios.people.qa_frame) answered once; room for the longest value's tokens,
    the "." and `<eos>`. `desc` names a progress bar (None: none)."""
    values = qa["value"].to_list()
    targets = [vocab.encode(v) for v in values]
    budget = max(map(len, targets), default=0) + 2
    ids = answer_ids(model, vocab, qa["question"].to_list(), beams=beams, batch_size=batch_size, max_new_tokens=budget,
                     desc=desc)
    answers = [read_answer(vocab, row) for row in ids]
    decoding = decoding_name(beams)
    return [QAAttempt(split, attribute, decoding, person, answer, exact_match(answer, value), row[:1] == target[:1])
            for split, attribute, person, value, target, row, answer in
            zip(qa["split"], qa["attribute"], qa["person"], values, targets, ids, answers)]


def _cell(rows: Sequence[QAAttempt]) -> dict:
    return {"n": len(rows), "accuracy": float(np.mean([a.correct for a in rows])),
            "first_token_accuracy": float(np.mean([a.first_token_correct for a in rows]))}


def summarize(attempts: Sequence[QAAttempt]) -> dict:
    """{split: {decoding: {n, accuracy, first_token_accuracy, by_attribute: {attribute: {n, accuracy,
    first_token_accuracy}}}}}, attributes in ATTRIBUTES order."""
    groups: dict[tuple[str, str], list[QAAttempt]] = defaultdict(list)
    for a in attempts:
        groups[(a.split, a.decoding)].append(a)
    out: dict = defaultdict(dict)
    for (split, decoding), rows in sorted(groups.items()):
        by_attribute = {a: [r for r in rows if r.attribute == a] for a in ATTRIBUTES}
        out[split][decoding] = _cell(rows) | {"by_attribute": {a: _cell(v) for a, v in by_attribute.items() if v}}
    return dict(out)


def answer_all(
    model: torch.nn.Module, vocab: TextVocab, qa: pl.DataFrame, *, beams: Sequence[int] = (1, 4), batch_size: int = 64,
    desc: str | None = None,
) -> list[QAAttempt]:
    """Every qa row answered with each beam count (1: greedy), decoding by decoding in qa row order; `desc`
    names a progress bar per decoding (None: none)."""
    return [a for k in beams for a in score(model, vocab, qa, beams=k, batch_size=batch_size,
                                            desc=None if desc is None else f"{desc} {decoding_name(k)}")]


def qa_accuracy(
    model: torch.nn.Module, vocab: TextVocab, qa: pl.DataFrame, *, beams: Sequence[int] = (1, 4), batch_size: int = 64,
    desc: str | None = None,
) -> dict:
    """`summarize` of `answer_all`."""
    return summarize(answer_all(model, vocab, qa, beams=beams, batch_size=batch_size, desc=desc))


def generation_rows(attempts: Sequence[QAAttempt], qa: pl.DataFrame, prefix: str = "") -> list[dict]:
    """The generations table's rows (`physlm.worlds.Evaluated`) of `answer_all(qa)`: set = `prefix` + split,
    index = the row of raw/qa.parquet (qa's `index` column), output = the answer read back, expected = the value."""
    asked = list(qa.select("index", "question", "value").iter_rows()) * (len(attempts) // max(len(qa), 1))
    return [{"set": prefix + a.split, "index": i, "prompt": qa_prompt(question), "output": a.answer, "verdict": a.correct,
             "error": None if a.correct else "no answer" if not a.answer.strip() else "wrong value", "decoding": a.decoding,
             "person": a.person, "attribute": a.attribute, "expected": value, "first_token_correct": a.first_token_correct}
            for a, (i, question, value) in zip(attempts, asked, strict=True)]


GENERATION_COLUMNS = {"decoding": pl.String, "person": pl.Int64, "attribute": pl.String, "expected": pl.String,
                      "first_token_correct": pl.Boolean}


def accuracy_rows(summary: Mapping) -> list[dict]:
    """Flat rows (split, decoding, attribute, n, accuracy, first_token_accuracy) for the CSV plot file."""
    return [{"split": split, "decoding": decoding, "attribute": attribute, **cell}
            for split, decodings in summary.items() for decoding, found in decodings.items()
            for attribute, cell in found["by_attribute"].items()]


def evaluate(paths: Paths, cfg, device: torch.device) -> Evaluated:
    """The evaluate step: the six questions of `evaluate.bio.people` P_train people (seen in QA training) and as
    many P_test people (out of distribution: only their biographies were seen), answered greedily and by beam
    search, exact match per attribute (`rows` flat for plots). A finetuned study also scores its model before
    finetuning (`pretrained`), which has never seen a question."""
    e = cfg.evaluate
    model = load_model(paths.model, device)
    pretrained = paths.model / "pretrained"  # read up front too: a bad file stops the stage before any work
    before = load_model(pretrained, device) if pretrained.is_dir() else None
    vocab = TextVocab.load(paths.tokens / "tokenizer.json")
    qa = read_parquet(paths.raw / "qa.parquet", {"person": pl.Int64, "attribute": pl.String, "question": pl.String,
                                                 "value": pl.String, "split": pl.String}).with_row_index("index")
    people = {split: qa.filter(pl.col("split") == split)["person"].unique(maintain_order=True).to_list()[: e.people]
              for split in SPLITS}
    asked = qa.filter(pl.col("person").is_in(people["P_train"] + people["P_test"]))
    step = f"evaluate {paths.study}: QA"  # the progress bars' names
    attempts = answer_all(model, vocab, asked, beams=e.beams, batch_size=e.batch_size, desc=step)
    metrics = summarize(attempts)
    rows = generation_rows(attempts, asked)
    if before is not None:
        attempts = answer_all(before, vocab, asked, beams=e.beams[:1], batch_size=e.batch_size, desc=f"{step} before finetuning")
        metrics["pretrained"] = summarize(attempts)
        rows += generation_rows(attempts, asked, "pretrained/")
    log = {f"{split}_{d}": found["accuracy"] for split in SPLITS for d, found in metrics.get(split, {}).items()}
    metrics["rows"] = accuracy_rows({k: v for k, v in metrics.items() if k != "pretrained"})
    line = ", ".join(f"{split}/{d} {found['accuracy']:.3f}" for split in SPLITS for d, found in metrics.get(split, {}).items())
    # metrics/<study>/evaluate.json (what `dvc exp show` lists): QA accuracy per split and decoding, and the model's
    # before finetuning (a finetuned study)
    headline = log | {f"pretrained_{split}_{d}": found["accuracy"] for split in SPLITS
                      for d, found in metrics.get("pretrained", {}).get(split, {}).items()}
    return Evaluated(metrics, log, line, headline, generations_table(rows, GENERATION_COLUMNS))
