"""physlm.worlds.bio.evaluate: a tiny GPT that memorised 8 QAs scores 1.0 (greedy and beam), a random one 0; how an
answer is read back; exact-match edge cases; the summary, its rows and the plots."""

from pathlib import Path

import polars as pl
import pytest
import torch

from physlm.bios.text import bio_vocab, qa_text
from physlm.worlds.bio.evaluate import accuracy_rows, answer_qa, exact_match, qa_accuracy, read_answer
from physlm.worlds.bio.report import plot_qa, plot_regimes
from physlm.model import GPT, GPTConfig
from physlm.tokenize import Vocab
from physlm.bios import biographies
from physlm.bios import people as bio

pytestmark = pytest.mark.usefixtures("one_thread")

SIZES = bio.PoolSizes(first_names=6, middle_names=6, last_names=6, cities=6, universities=6, majors=6, employers=6)
PEOPLE = bio.make_people(bio.BioSpec(people=8, seed=2, pools=SIZES))
QA = biographies.qa_frame(PEOPLE)[[6 * i + i % 6 for i in range(8)]]  # 8 QAs: one per person, every attribute, both splits
VOCAB = bio_vocab(bio.load_pools(SIZES), bio.load_templates())


def tiny() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=VOCAB.size, context=40, depth=2, width=64, heads=4))


def memorised(steps: int = 200) -> GPT:
    pairs = QA.select("question", "answer").iter_rows()
    rows = [[Vocab.bos_id, *VOCAB.encode(qa_text(q, a)), Vocab.eos_id] for q, a in pairs]
    width = max(map(len, rows))
    idx = torch.tensor([r[:-1] + [0] * (width - len(r)) for r in rows])
    targets = torch.tensor([r[1:] + [-1] * (width - len(r)) for r in rows])
    model = tiny()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    for _ in range(steps):
        _, loss = model(idx, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


@pytest.fixture(scope="module")
def trained() -> GPT:
    return memorised()


def test_memorised_qas_score_one(trained: GPT) -> None:
    summary = qa_accuracy(trained, VOCAB, QA, beams=(1, 4), batch_size=3)
    assert set(summary) == {"P_train", "P_test"}
    for split in summary.values():
        assert set(split) == {"greedy", "beam4"}
        for cell in split.values():
            assert cell["n"] == 4 and cell["accuracy"] == 1.0 and cell["first_token_accuracy"] == 1.0
    answers = answer_qa(trained, VOCAB, QA["question"].to_list(), beams=4, batch_size=8, max_new_tokens=8)
    assert answers == QA["value"].to_list()


def test_random_model_scores_zero() -> None:
    summary = qa_accuracy(tiny(), VOCAB, QA, beams=(1, 2), batch_size=8)
    assert all(cell["accuracy"] == 0.0 for split in summary.values() for cell in split.values())


def test_answer_is_read_up_to_the_first_period_or_eos() -> None:
    period, eos = VOCAB.id("."), Vocab.eos_id
    value = VOCAB.encode("October 2, 1996")
    assert read_answer(VOCAB, value + [period, eos]) == "October 2, 1996"
    assert read_answer(VOCAB, value + [period] + VOCAB.encode("What is")) == "October 2, 1996"
    assert read_answer(VOCAB, value + [eos, period]) == "October 2, 1996"
    assert read_answer(VOCAB, value) == "October 2, 1996"  # max_new_tokens reached: the whole generation
    assert read_answer(VOCAB, [period, *value]) == ""


def test_no_pool_value_contains_a_period() -> None:
    pools = bio.load_pools()
    values = [*pools.cities, *pools.universities, *pools.majors, *pools.employers, *pools.headquarters.values()]
    assert not [v for v in values if "." in v]


def test_exact_match_edge_cases() -> None:
    assert exact_match("Princeton, NJ", "Princeton, NJ")
    assert exact_match(" Princeton, NJ ", "Princeton, NJ")
    assert not exact_match("Princeton", "Princeton, NJ")  # a prefix
    assert not exact_match("Princeton, NJ, USA", "Princeton, NJ")  # longer
    assert not exact_match("princeton, nj", "Princeton, NJ")  # case
    assert not exact_match("Princeton NJ", "Princeton, NJ")  # punctuation
    assert not exact_match("", "Princeton, NJ")


def test_rows_and_plots(trained: GPT, tmp_path: Path) -> None:
    summary = qa_accuracy(trained, VOCAB, QA, beams=(1,), batch_size=8)
    rows = accuracy_rows(summary)
    assert len(rows) == 8 and {r["split"] for r in rows} == {"P_train", "P_test"}
    assert pl.DataFrame(rows).columns == ["split", "decoding", "attribute", "n", "accuracy", "first_token_accuracy"]
    by_split = {s: {r["attribute"] for r in rows if r["split"] == s} for s in ("P_train", "P_test")}
    assert by_split == {s: set(QA.filter(pl.col("split") == s)["attribute"]) for s in by_split}
    plot_qa(rows, tmp_path / "qa.png", "tiny")
    plot_regimes({"memorised": summary, "random": qa_accuracy(tiny(), VOCAB, QA, beams=(1,))}, tmp_path / "regimes.png")
    assert (tmp_path / "qa.png").stat().st_size > 0 and (tmp_path / "regimes.png").stat().st_size > 0
    with pytest.raises(ValueError, match="split 'P_none'"):
        plot_regimes({"memorised": summary}, tmp_path / "none.png", split="P_none")
