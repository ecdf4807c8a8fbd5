"""Post-training quantization of the capacity measurement (physlm/worlds/capacity/quantize.py): round-to-nearest,
symmetric, per output channel. Checked here against definitions, not against the code's own numbers: at most
2^b - 1 values per row, zero rows stay zero, every value within half a step of the original, idempotence; on a
tiny random GPT every Linear and Embedding weight is quantized and nothing else, the original is untouched, int8
moves the logits by a small bounded amount and int4 by much more; the evaluate param and the report's rows."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from physlm.worlds.capacity.quantize import quantize, rtn


def tiny_gpt(seed: int = 0, **cfg):
    from physlm.model import GPT, GPTConfig

    torch.manual_seed(seed)
    base = {"vocab_size": 60, "context": 16, "depth": 2, "width": 32, "heads": 2, "pos": "rot", "mlp_ratio": 4,
            "dropout": 0.0, "rope_base": 10000.0}
    return GPT(GPTConfig(**(base | cfg))).eval()


@pytest.mark.parametrize("bits", [8, 4])
def test_rtn_per_row(bits: int) -> None:
    torch.manual_seed(1)
    w = torch.randn(12, 40) * torch.logspace(-3, 1, 12)[:, None]  # rows of very different scales
    w[3] = 0.0
    q = rtn(w, bits)
    qmax = 2 ** (bits - 1) - 1
    assert q.shape == w.shape and q.dtype == w.dtype
    assert torch.equal(q[3], torch.zeros(40))
    for row, orig in zip(q, w):
        assert len(torch.unique(row)) <= 2**bits - 1  # at most 2^b values (symmetric: 2^b - 1)
        step = orig.abs().max() / qmax
        if step > 0:
            assert torch.allclose(row / step, torch.round(row / step), atol=1e-4)  # on the row's own grid
            assert (row - orig).abs().max() <= step / 2 + 1e-6 * orig.abs().max()  # round to nearest
            assert row.abs().max() == pytest.approx(float(orig.abs().max()), rel=1e-6)  # the extreme is exact
    assert torch.allclose(rtn(q, bits), q, rtol=0, atol=1e-6 * float(w.abs().max()))  # idempotent


def test_rtn_needs_two_bits() -> None:
    with pytest.raises(ValueError, match="at least 2 bits"):
        rtn(torch.ones(2, 2), 1)


def test_quantize_a_tiny_gpt() -> None:
    model = tiny_gpt()
    with torch.no_grad():  # give the norms non-trivial gains, which must survive untouched
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    idx = torch.randint(0, 60, (4, 16))
    with torch.no_grad():
        logits = model(idx)[0]
    changes = {}
    for fmt, bits in (("int8", 8), ("int4", 4)):
        q, done = quantize(model, fmt)
        assert done["bits"] == bits and "round-to-nearest" in done["method"]
        matrices = {n for n, m in q.named_modules() if isinstance(m, (nn.Linear, nn.Embedding))}
        assert {"wte", "head"} <= matrices and any(".attn." in n for n in matrices) and any(".mlp." in n for n in matrices)
        quantized = 0
        for name, p in q.named_parameters():
            module = name.rsplit(".", 1)[0]
            if module in matrices and name.endswith("weight"):
                quantized += p.numel()
                assert max(len(torch.unique(row)) for row in p.detach()) <= 2**bits - 1, name
                assert not torch.equal(p, before[name]), name
            else:  # norms (and anything else) keep their float values
                assert torch.equal(p, before[name]), name
        assert done["quantized_params"] == quantized and done["quantized_params"] + done["float_params"] == model.num_params()
        assert done["float_params"] > 0
        with torch.no_grad():
            changes[fmt] = float((q(idx)[0] - logits).norm() / logits.norm())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the trained model is untouched
    assert 0 < changes["int8"] < 0.03  # int8: about 1% of the logits
    assert changes["int4"] > 4 * changes["int8"] and changes["int4"] < 0.6  # int4: an order more, still not noise


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown quantization 'int2'"):
        quantize(tiny_gpt(), "int2")


def test_the_evaluate_param() -> None:
    from physlm.worlds.capacity.params import CapacityEvaluateParams

    base = {"people": 0, "batch_size": 8, "control": False}
    assert CapacityEvaluateParams(**base).quantize == []  # the default: params.yaml needs no key
    assert CapacityEvaluateParams(**base, quantize=["int4", "int8"]).quantize == ["int4", "int8"]
    for bad in (["int2"], ["int8", "int8"], "int8"):
        with pytest.raises(ValidationError):
            CapacityEvaluateParams(**base, quantize=bad)


def _metrics(R: float, quantized: dict | None) -> dict:
    e = {"params": {"paper": 1000, "physlm": 1200}, "spec": {"N": 10}, "upper_bound": {"total": 5000.0},
         "trained": {"bits": {"total": R * 1000}, "R_paper": R, "R_physlm": R * 1000 / 1200},
         "capacity_bound": {"paper": True}, "control": {"R_paper": -0.5}}
    if quantized:
        e["quantized"] = {f: {"bits": {"total": r * 1000}, "R_paper": r, "R_physlm": r * 1000 / 1200} for f, r in quantized.items()}
    return {"evaluate": e, "train": {"model": {"depth": 2, "width": 8}, "exposures": {"requested": 100, "min": 90, "mean": 99.0, "max": 110}}}


def test_the_report_rows(tmp_path) -> None:
    """A row per quantized copy with its own bits and R; the peaks and the figure stay the trained models'."""
    from physlm.worlds.capacity.report import section

    text = section({"a": _metrics(1.5, {"int8": 1.49, "int4": 0.4}), "b": _metrics(1.2, None)}, tmp_path)
    rows = [line for line in text.splitlines() if line.startswith("| a") or line.startswith("| b")]
    assert [r.split(" | ")[0] for r in rows] == ["| a", "| a (int8 RTN)", "| a (int4 RTN)", "| b"]
    assert " 1490 " in rows[1] and " 400 " in rows[2] and "GPTQ" in text
    assert "2L8D 1.500 (a)" in text  # the peak is the trained model's, not a copy's
