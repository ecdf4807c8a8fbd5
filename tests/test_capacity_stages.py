"""The capacity world's steps on tiny params: exposures (steps derived from them through the engine's Plan hook,
and the realized counts against a hand-built window set), the loss bookkeeping of the evaluation on a scripted
model whose every loss is known, and a tiny study through every stage (generate, tokenize, train, probe,
evaluate with its int8 / int4 copies, report)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
import yaml
from torch import nn

from physlm.worlds.capacity.biod import Spec
from physlm.worlds.capacity.bits import stored_bits
from physlm.worlds.capacity.evaluate import (
    measure,
    parameter_counts,
    person_losses,
    token_losses,
)
from physlm.worlds.capacity.train import derived_steps, exposure_counts, packed_tokens

ROOT = Path(__file__).resolve().parents[1]
GENERATE = {"N": 40, "K": 2, "C": 2, "D": 4, "L": 1, "T": 8,
            "pools": {"first_names": 10, "middle_names": 10, "last_names": 10}, "workers": 1}
PROBE = {"people": 40, "attributes": 2, "train_fraction": 0.5, "steps": 10, "lr": 5.0e-2, "batch_size": 16, "control": True}
EVALUATE = {"people": 0, "batch_size": 16, "control": True, "quantize": ["int8", "int4"]}
TRAIN = {"steps": 1000, "exposures": 3, "batch_size": 4, "micro_batch_size": 2, "eval_every": 4, "checkpoint_every": 4,
         "log_every": 2, "warmup_steps": 1, "eval_batches": 1}


def test_derived_steps() -> None:
    assert derived_steps(1000, 10_000, 74, 24, 512) == math.ceil(1000 * 10_000 * 74 / (24 * 512))
    assert derived_steps(3, 40, 19, 4, 64) == 9


def test_exposure_counts_of_hand_built_windows() -> None:
    """Three windows (bos 0, eos 1): paragraphs named (5 6 7) and (8 8 8), one cut at a window's end, one begun
    before the window; window 1 used twice, window 2 never. Two people of four never seen."""
    w = np.array([[0, 5, 6, 7, 9, 1, 0, 5, 6], [0, 8, 8, 8, 1, 0, 5, 6, 7], [7, 1, 0, 5, 6, 7, 9, 9, 1]])
    found = exposure_counts(w, np.array([1, 2, 0]), 0, 1, 4)
    assert found == {"min": 0, "mean": 0.75, "max": 2, "histogram": {"0": 2, "1": 1, "2": 1}, "never": 2, "cut": 3}


class Scripted(nn.Module):
    """A stand-in GPT: perfect (logit 1e4 on the true next token) at the positions `sure` of each paragraph, uniform
    elsewhere; the paragraph is looked up by the three name tokens after <bos>."""

    def __init__(self, paragraphs: np.ndarray | list[list[int]], sure: list[set[int]], vocab: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        rows = paragraphs.tolist() if isinstance(paragraphs, np.ndarray) else paragraphs  # bioS: lengths vary
        self.by_name = {tuple(p[:3]): (p, s) for p, s in zip(rows, sure)}
        self.vocab = vocab

    def forward(self, idx: torch.Tensor):
        logits = torch.zeros(*idx.shape, self.vocab)
        for b, row in enumerate(idx.tolist()):
            paragraph, sure = self.by_name[tuple(row[1:4])]
            for k in sure:
                if k < idx.shape[1]:  # a shorter paragraph in a padded batch
                    logits[b, k, paragraph[k]] = 1e4
        return logits, None


def test_losses_of_a_scripted_model() -> None:
    """Uniform everywhere but attribute 1's values, which it knows: p1 = 3 ln V, p2 = (K-1)/K x C L ln V, p3 = that
    of one chunk; a person-by-person check that the value positions follow each paragraph's own order."""
    spec = Spec(N=3, K=2, C=2, D=4, L=2, T=5, pools=(3, 3, 3))
    V = 40
    # paragraph layout: 3 name tokens, then per sentence opener, ID, is, C chunks of L with commas, stop (K = 2)
    orders = [[1, 2], [2, 1], [1, 2]]
    paragraphs = np.array([[20 + n, 30 + n, 35 + n] + list(range(3, 3 + 2 * 10)) for n in range(3)])
    first_value = {1: [6, 7, 9, 10], 2: [15, 16, 18, 19]}  # value tokens of sentence 1 (3-11) / sentence 2 (12-20)
    sure = [set(first_value[order.index(1) + 1]) for order in orders]  # where attribute 1's value tokens are
    model = Scripted(paragraphs, sure, V)
    nll = token_losses(model, paragraphs, bos=0, batch_size=2)
    losses = person_losses(nll, orders, spec)
    lnv = math.log(V)
    assert np.allclose(losses.p1, 3 * lnv) and np.allclose(losses.p2[:, 0], 0) and np.allclose(losses.p2[:, 1], 4 * lnv)
    assert np.allclose(losses.p3[:, 0], 0) and np.allclose(losses.p3[:, 1], 2 * lnv)
    got = measure(losses, spec, {"paper": 100, "physlm": 200})
    want = stored_bits(3 * lnv, 2 * lnv, lnv, N0=27, N=3, K=2, C=2, D=4, L=2, T=5).total
    assert got["bits"]["total"] == pytest.approx(want) and got["R_paper"] == pytest.approx(want / 100)
    assert got["R_physlm"] == pytest.approx(want / 200)


def test_parameter_counts() -> None:
    from physlm.model import GPT, GPTConfig

    model = GPT(GPTConfig(vocab_size=50, context=16, depth=1, width=8, heads=2, pos="rot", mlp_ratio=4, dropout=0.0,
                          rope_base=10000.0))
    counts = parameter_counts(model, used_tokens=30)
    assert counts["physlm"] == sum(p.numel() for p in model.parameters())
    assert counts["physlm"] - counts["paper"] == 2 * 20 * 8  # unused rows of the embedding and of the untied head


def tiny_capacity_params() -> dict:
    """The repo's shared sections, the world's probe/evaluate defaults at tiny sizes, one dataset and study."""
    repo = yaml.safe_load((ROOT / "params.yaml").read_text())
    shared = {k: repo[k] for k in ("seed", "nproc", "model", "train", "probe", "evaluate")}
    shared["probe"]["capacity"], shared["evaluate"]["capacity"] = dict(PROBE), dict(EVALUATE)
    return shared | {"datasets": {"capacity_tiny": {"world": "capacity", "generate": dict(GENERATE),
                                                    "tokenize": {"context": 64, "pack": "sentences", "copies": 3}}},
                     "studies": {"capacity_tiny": {"world": "capacity", "data": "capacity_tiny",
                                                   "model": {"depth": 1, "width": 32, "heads": 2}, "train": dict(TRAIN),
                                                   "probe": {}, "evaluate": {}}}}


def test_a_tiny_study_runs_every_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_thread) -> None:
    import stages.evaluate
    import stages.generate
    import stages.probe
    import stages.report
    import stages.tokenize
    import stages.train
    from physlm.cli import run_stage

    monkeypatch.setenv("PHYSLM_TRACKING", "0")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_capacity_params(), sort_keys=False))
    for stage, module, name in (("generate", stages.generate, "capacity_tiny"), ("tokenize", stages.tokenize, "capacity_tiny"),
                                ("train", stages.train, "capacity_tiny"), ("probe", stages.probe, "capacity_tiny"),
                                ("evaluate", stages.evaluate, "capacity_tiny"), ("report", stages.report, None)):
        run_stage(stage, module.main, [name] if name else [])
    metrics = tmp_path / "metrics/capacity_tiny"
    meta = json.loads((tmp_path / "data/capacity_tiny/tokens/meta.json").read_text())
    assert meta["entry_tokens"] == 3 + 2 * (2 + 2 + 3) + 2 and meta["people"] == 40 and meta["copies"] == 3
    # steps come from exposures through the Plan hook, not from train.steps
    windows = len(np.load(tmp_path / "data/capacity_tiny/tokens/train.npy"))
    steps = derived_steps(3, 40, packed_tokens(windows, 64, 40, 3), 4, 64)
    assert steps == math.ceil(windows / 4)  # exposures = copies: one pass over the windows
    assert pl.read_csv(metrics / "loss.csv")["step"].max() == steps
    trained = json.loads((metrics / "detail/train.json").read_text())
    exposures = trained["exposures"]
    assert exposures["steps"] == steps and exposures["params_steps"] == 1000 and exposures["requested"] == 3
    assert sum(exposures["histogram"].values()) == 40
    assert sum(int(k) * v for k, v in exposures["histogram"].items()) == pytest.approx(40 * exposures["mean"])
    assert 0 < exposures["mean"] <= steps * 4 * 64 / meta["entry_tokens"]  # no more paragraphs than tokens trained on
    # one pass, in which every writing lies whole in one window: a mean of 3 exposures (counting the paragraph's own
    # tokens instead of the packed ones gave 2.7); a few people 2 (the packing drops the split's last, short window)
    # or 4 (the last update's windows beyond the pass)
    assert 2 <= exposures["min"] and exposures["max"] <= 4 and abs(exposures["mean"] - 3) <= 0.15, exposures
    evaluated = json.loads((metrics / "detail/evaluate.json").read_text())
    check_generations(tmp_path, evaluated)
    assert evaluated["spec"] == {"N0": 1000, "N": 40, "K": 2, "C": 2, "D": 4, "L": 1, "T": 8} and evaluated["people"] == 40
    assert evaluated["params"]["physlm"] - evaluated["params"]["paper"] == \
        2 * 32 * (evaluated["params"]["vocab_size"] - evaluated["params"]["used_tokens"]) > 0
    assert evaluated["capacity_bound"] == {"paper": False, "physlm": False}  # ~500 data bits, ~20k parameters
    for name in ("trained", "control"):
        p = evaluated[name]
        bits = stored_bits(p["p1"], p["p2"], p["p3"], **evaluated["spec"])
        assert p["bits"]["total"] == pytest.approx(bits.total) and p["R_paper"] == pytest.approx(bits.total / evaluated["params"]["paper"])
    assert evaluated["control"]["bits"]["total"] < 0 < evaluated["upper_bound"]["total"]  # random init stores nothing
    assert evaluated["trained"]["p1"] < evaluated["control"]["p1"]  # a few steps already learn the name tokens' marginals
    # the quantized copies: measured again by the same formula, with the same P, and the copy is not the model
    quantized = evaluated["quantized"]
    assert set(quantized) == {"int8", "int4"}
    for fmt, q in quantized.items():
        bits = stored_bits(q["p1"], q["p2"], q["p3"], **evaluated["spec"])
        assert q["bits"]["total"] == pytest.approx(bits.total)
        assert q["R_paper"] == pytest.approx(bits.total / evaluated["params"]["paper"])
        assert q["R_physlm"] == pytest.approx(bits.total / evaluated["params"]["physlm"])
        assert q["quantized_params"] + q["float_params"] == evaluated["params"]["physlm"] and q["max_weight_change"] > 0
    trained = evaluated["trained"]
    assert abs(quantized["int8"]["p2"] - trained["p2"]) < abs(quantized["int4"]["p2"] - trained["p2"])
    assert abs(quantized["int8"]["p2"] - trained["p2"]) < 0.05 * trained["p2"]  # int8 changes the losses little
    headline = json.loads((metrics / "evaluate.json").read_text())
    assert {"bits", "R_paper", "R_physlm", "p1", "p2", "p3", "upper_bound_bits", "capacity_bound_paper", "control_bits",
            "bits_int8", "R_paper_int8", "R_physlm_int8", "bits_int4", "R_paper_int4"} <= set(headline)
    assert headline["bits_int4"] == pytest.approx(quantized["int4"]["bits"]["total"])
    probe = pl.read_csv(metrics / "probe/probe.csv")
    assert probe.height == 2 * 2 * 2 and set(probe["model"]) == {"trained", "control"}  # models x layers x attributes
    summary = (tmp_path / "reports/summary.md").read_text()
    assert "## Capacity" in summary and "| capacity_tiny |" in summary
    assert "| capacity_tiny (int8 RTN) |" in summary and "| capacity_tiny (int4 RTN) |" in summary
    assert re.search(r"no \(data bits < 2P\)", summary)
    assert (tmp_path / "reports/capacity_bits.png").is_file() == (evaluated["trained"]["bits"]["total"] > 0)


def check_generations(root: Path, evaluated: dict) -> None:
    """generations/capacity_tiny/evaluate.parquet: no generation here, a row per person and model with the
    paragraph scored and its losses, whose means are the metrics' p1, p2 and p3."""
    import generations

    frame = generations.read(root, "capacity_tiny", {"p1": pl.Float64, "p2": pl.List(pl.Float64), "p3": pl.List(pl.Float64)},
                             generated=False)
    texts = pl.read_parquet(root / "data/capacity_tiny/raw/people.parquet")["text"]
    sets = {"trained", "control", *(f"quantized/{fmt}" for fmt in evaluated["quantized"])}
    assert set(frame["set"]) == sets and frame.height == 40 * len(sets)
    for name, group in frame.group_by("set"):
        entry = generations.node(evaluated, name[0])
        assert group["index"].to_list() == list(range(40)) and group["prompt"].to_list() == texts.to_list()
        assert group["p1"].mean() == pytest.approx(entry["p1"], rel=1e-12)
        for p in ("p2", "p3"):
            assert (group[p].list.len() == 2).all() and group[p].explode(empty_as_null=False).mean() == pytest.approx(entry[p], rel=1e-12)


def test_parameter_counts_of_a_tied_model_count_the_one_matrix_once() -> None:
    from physlm.model import GPT, GPTConfig

    untied = GPT(GPTConfig(vocab_size=50, context=16, depth=1, width=8, heads=2))
    tied = GPT(GPTConfig(vocab_size=50, context=16, depth=1, width=8, heads=2, tie_embeddings=True))
    assert untied.num_params() - tied.num_params() == 50 * 8  # the head's own matrix
    counts = parameter_counts(tied, used_tokens=30)
    assert counts["physlm"] == tied.num_params()
    assert counts["physlm"] - counts["paper"] == 20 * 8  # unused rows of the one shared matrix
