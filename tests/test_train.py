"""physlm.train: learning, lr schedule, accumulation, CPU determinism, checkpoint resume, config checks."""

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import golden

from physlm.device import ASSUMED_PEAK_TFLOPS, Peak, peak_flops, peak_for
from physlm.errors import DataError
from physlm.model import GPT, GPTConfig
from physlm.train import Prefetcher, TrainConfig, TrainResult, batch_rows, lr_at, train

pytestmark = pytest.mark.usefixtures("one_thread")

MODEL = GPTConfig(vocab_size=8, context=16, depth=2, width=32, heads=2)


def cyclic_windows(count: int, seed: int = 0) -> np.ndarray:
    """Windows of the cycle 0 1 .. 6 0 1 .. at random offsets: learnable from one token of context."""
    stream = np.arange(200) % 7
    offsets = np.random.default_rng(seed).integers(0, 100, count)
    return np.stack([stream[o : o + MODEL.context + 1] for o in offsets]).astype(np.uint16)


WINDOWS, VAL = cyclic_windows(64), cyclic_windows(16, seed=1)


def run(
    tmp_path: Path, stop_after: int | None = None, on_log: Callable[[dict], None] | None = None, **kw: object
) -> TrainResult:
    """12 steps of batch 8 (2 micro-steps of 4), eval every 6, checkpoint every 4, log every 3; kw overrides."""
    defaults = {"steps": 12, "batch_size": 8, "micro_batch_size": 4, "lr": 3e-3, "warmup_steps": 2,
                "eval_every": 6, "eval_batches": 2, "checkpoint_every": 4, "log_every": 3}
    cfg = TrainConfig(**{**defaults, **kw})
    return train(MODEL, cfg, WINDOWS, VAL, tmp_path, stop_after=stop_after, on_log=on_log, progress=False)


def assert_equal_weights(a: GPT, b: GPT) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name


TIMING = ("tokens_per_s", "data_wait", "mfu")  # wall-clock measurements: differ between identical runs


def without_timing(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING} for row in history]


# The first 12 losses (and the two val losses) of `run(steps=12, log_every=1)`, recorded on CPU before the
# training engine gained DDP, prefetching and MFU (issue 6). Single-process CPU training must reproduce them
# bit for bit: the committed demo results (dvc.lock) depend on it.
GOLDEN_LOSSES = {  # per CPU vendor (conftest.golden): the AMD EPYC values were recorded before issue 6
    "AuthenticAMD": [2.1496992111206055, 1.8342549800872803, 1.6031264066696167, 1.5027775764465332, 1.4367563724517822,
                     1.378307580947876, 1.326042652130127, 1.283542513847351, 1.24397611618042, 1.2214300632476807,
                     1.2063274383544922, 1.1994510889053345],
    "GenuineIntel": [2.1496992111206055, 1.8342549800872803, 1.6031262874603271, 1.5027775764465332, 1.4367563724517822,
                     1.3783077001571655, 1.326042652130127, 1.2835423946380615, 1.24397611618042, 1.2214300632476807,
                     1.2063274383544922, 1.1994510889053345],
}
GOLDEN_VAL_LOSSES = {"AuthenticAMD": [1.3277133703231812, 1.197810411453247],
                     "GenuineIntel": [1.3277133703231812, 1.197810411453247]}


def test_golden_losses_are_bit_identical(tmp_path: Path) -> None:
    result = run(tmp_path, log_every=1)
    assert [row["loss"] for row in result.history] == golden(GOLDEN_LOSSES)
    assert [row["val_loss"] for row in result.history if "val_loss" in row] == golden(GOLDEN_VAL_LOSSES)


def test_loss_decreases_on_learnable_data(tmp_path: Path) -> None:
    result = run(tmp_path, steps=40, lr=1e-2, eval_every=20, log_every=5)
    assert result.history[0]["loss"] > 1.0
    assert result.final_loss < 0.3 and result.final_val_loss < 0.3
    assert result.tokens_seen == 40 * 8 * MODEL.context
    assert [row["step"] for row in result.history] == list(range(5, 41, 5))
    assert (tmp_path / "checkpoint.pt").exists()


@pytest.mark.parametrize("decay", ["cosine", "linear"])
def test_lr_schedule(decay: str) -> None:
    cfg = TrainConfig(steps=110, batch_size=1, micro_batch_size=1, lr=1.0, min_lr_ratio=0.1, warmup_steps=10,
                      decay=decay)
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(9, cfg) == pytest.approx(1.0)  # end of warmup
    assert lr_at(10, cfg) == pytest.approx(1.0)
    assert lr_at(60, cfg) == pytest.approx(0.55)  # midpoint of decay: halfway to min lr, both shapes
    assert lr_at(110, cfg) == pytest.approx(0.1)
    quarter = 0.1 + 0.9 * (0.75 if decay == "linear" else 0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_at(35, cfg) == pytest.approx(quarter)


def test_constant_lr() -> None:
    cfg = TrainConfig(steps=10, batch_size=1, micro_batch_size=1, lr=0.5, warmup_steps=2, decay="constant")
    assert [lr_at(s, cfg) for s in (0, 1, 2, 9)] == [0.25, 0.5, 0.5, 0.5]


def test_accumulation_matches_full_batch(tmp_path: Path) -> None:
    accumulated = run(tmp_path / "a", steps=4, micro_batch_size=4)
    full = run(tmp_path / "b", steps=4, micro_batch_size=8)
    for (name, x), y in zip(accumulated.model.state_dict().items(), full.model.state_dict().values()):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-5, msg=name)


def test_cpu_training_is_bit_for_bit_deterministic(tmp_path: Path) -> None:
    a, b = run(tmp_path / "a", steps=6), run(tmp_path / "b", steps=6)
    assert_equal_weights(a.model, b.model)
    assert without_timing(a.history) == without_timing(b.history)


@pytest.mark.parametrize("stop_after", [8, 10])
def test_resume_equals_uninterrupted(tmp_path: Path, stop_after: int) -> None:
    whole = run(tmp_path / "whole")
    interrupted = run(tmp_path / "resumed", stop_after=stop_after)
    assert interrupted.resumed_from is None and interrupted.history[-1]["step"] <= stop_after
    resumed = run(tmp_path / "resumed")
    assert resumed.resumed_from == 8  # the last checkpoint (checkpoint_every=4)
    assert_equal_weights(whole.model, resumed.model)
    assert without_timing(resumed.history) == without_timing(whole.history)
    assert (resumed.final_loss, resumed.final_val_loss) == (whole.final_loss, whole.final_val_loss)
    assert resumed.tokens_seen == whole.tokens_seen


def test_finished_run_resumes_without_training(tmp_path: Path) -> None:
    first = run(tmp_path, steps=4)
    again = run(tmp_path, steps=4)
    assert again.resumed_from == 4
    assert_equal_weights(first.model, again.model)
    assert again.final_loss == first.final_loss


def test_stale_checkpoint_is_ignored_with_warning(tmp_path: Path) -> None:
    run(tmp_path, steps=4)
    with pytest.warns(UserWarning, match="other configs or data"):
        result = run(tmp_path, steps=4, lr=1e-3)
    assert result.resumed_from is None


def test_batches_are_a_function_of_seed_step_micro() -> None:
    cfg = TrainConfig(steps=100, batch_size=8, micro_batch_size=4, lr=1.0)
    assert batch_rows(0, 3, 1, cfg, 20) == batch_rows(0, 3, 1, cfg, 20)
    assert batch_rows(0, 3, 1, cfg, 20) != batch_rows(1, 3, 1, cfg, 20)
    epoch = [row for step in range(5) for micro in range(2) for row in batch_rows(0, step, micro, cfg, 40)]
    assert sorted(epoch) == list(range(40))  # one epoch visits every window once


def test_indivisible_batch_raises() -> None:
    with pytest.raises(ValueError, match=r"TrainConfig\.batch_size"):
        TrainConfig(steps=1, batch_size=10, micro_batch_size=4, lr=1.0)


@pytest.mark.parametrize(
    ("kw", "field"),
    [({"decay": "step"}, "decay"), ({"lr": 0.0}, "lr"), ({"warmup_steps": 5}, "warmup_steps"),
     ({"parallel": "tp"}, "parallel")],
)
def test_bad_train_config_names_field(kw: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"TrainConfig\.{field}\b"):
        TrainConfig(**{"steps": 2, "batch_size": 4, "micro_batch_size": 2, "lr": 1.0, **kw})


def test_bad_windows_raise_before_writing(tmp_path: Path) -> None:
    cfg = TrainConfig(steps=2, batch_size=4, micro_batch_size=2, lr=1.0)
    too_long = np.zeros((8, MODEL.context + 2), dtype=np.uint16)
    with pytest.raises(DataError, match="train_windows"):  # a stage prints it as one line
        train(MODEL, cfg, too_long, None, tmp_path, progress=False)
    out_of_vocab = WINDOWS.copy()
    out_of_vocab[0, 0] = MODEL.vocab_size
    with pytest.raises(DataError, match="vocab_size"):
        train(MODEL, cfg, out_of_vocab, None, tmp_path, progress=False)
    assert not list(tmp_path.iterdir())


def test_on_log_receives_history_rows(tmp_path: Path) -> None:
    rows: list[dict] = []
    result = run(tmp_path, steps=6, on_log=rows.append)
    assert rows == result.history and [row["step"] for row in rows] == [3, 6]
    assert "val_loss" in rows[1] and "val_loss" not in rows[0]


def test_rows_report_throughput_and_data_wait(tmp_path: Path) -> None:
    result = run(tmp_path, steps=6)
    for row in result.history:
        assert row["tokens_per_s"] > 0 and 0.0 <= row["data_wait"] < 1.0
        assert "mfu" not in row  # CPU: no peak to measure against


def test_prefetcher_hands_out_batches_in_order_and_raises_errors() -> None:
    def make(step: int, micro: int) -> tuple[torch.Tensor, torch.Tensor]:
        if step == 3:
            raise ValueError("bad batch 3")
        return torch.tensor([step]), torch.tensor([micro])

    loader = Prefetcher(make, ((s, m) for s in range(5) for m in range(2)), torch.device("cpu"))
    got = [tuple(int(t) for t in loader.next()) for _ in range(6)]
    assert got == [(s, m) for s in range(3) for m in range(2)]
    with pytest.raises(ValueError, match="bad batch 3"):
        loader.next()
    loader.close()
    assert loader.waited >= 0.0


def test_prefetcher_closes_before_the_keys_run_out() -> None:
    endless = ((k,) for k in range(10**6))
    loader = Prefetcher(lambda k: (torch.tensor([k]), torch.tensor([k])), endless, torch.device("cpu"))
    assert int(loader.next()[0]) == 0
    loader.close()
    assert not loader._thread.is_alive()


def test_peak_table() -> None:
    assert peak_for("NVIDIA H100 80GB HBM3") == Peak("NVIDIA H100 80GB HBM3", 989.0, estimated=False)
    assert peak_for("NVIDIA H200").tflops == 989.0 and peak_for("NVIDIA A100-SXM4-80GB").tflops == 312.0
    assert peak_for("NVIDIA H100 PCIe").tflops == 756.0
    assert peak_for("NVIDIA GeForce RTX 4090") == Peak("NVIDIA GeForce RTX 4090", ASSUMED_PEAK_TFLOPS, estimated=True)
    assert peak_for("NVIDIA H100 80GB HBM3", override="700") == Peak("NVIDIA H100 80GB HBM3", 700.0, estimated=True)
    assert peak_flops(torch.device("cpu")) is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("compile", [False, True])
def test_cuda_rows_report_mfu(tmp_path: Path, compile: bool) -> None:
    """The GPU path (bf16 autocast, fused AdamW, prefetching from pinned memory, optionally compiled) learns
    and reports MFU and the wait for data."""
    cfg = TrainConfig(steps=60, batch_size=8, micro_batch_size=4, lr=1e-2, eval_every=30, checkpoint_every=30,
                      log_every=10, compile=compile)
    result = train(MODEL, cfg, WINDOWS, VAL, tmp_path, device="cuda", progress=False)
    assert result.final_loss is not None and result.final_loss < 0.5
    for row in result.history:
        assert 0.0 < row["mfu"] < 1.0 and 0.0 <= row["data_wait"] < 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_training_and_sampling(tmp_path: Path) -> None:
    """The GPU path: bf16 autocast training learns, and the cached sampler runs on the device."""
    from physlm.sampling import generate

    cfg = TrainConfig(steps=60, batch_size=8, micro_batch_size=4, lr=1e-2, eval_every=30, checkpoint_every=30)
    result = train(MODEL, cfg, WINDOWS, VAL, tmp_path, device="cuda", progress=False)
    assert next(result.model.parameters()).device.type == "cuda"
    assert result.final_loss is not None and result.final_loss < 0.5
    out = generate(result.model, [[0, 1, 2]], max_new_tokens=8, temperature=0.0, eos_id=-1, seed=0)
    assert out == [[3, 4, 5, 6, 0, 1, 2, 3]]


def test_init_starts_from_the_given_model_and_trains_only_what_requires_grad(tmp_path: Path) -> None:
    from physlm.lora import LoraConfig, apply_lora, merge_lora

    base = run(tmp_path / "base").model
    cfg = TrainConfig(steps=4, batch_size=8, micro_batch_size=4, lr=3e-3, warmup_steps=0, eval_every=4, eval_batches=2,
                      checkpoint_every=4, log_every=2)
    full = train(MODEL, cfg, WINDOWS, VAL, tmp_path / "full", init=base, progress=False)
    assert full.history[0]["loss"] < run(tmp_path / "fresh", steps=4).history[0]["loss"]  # starts trained
    before = {k: v.clone() for k, v in base.state_dict().items()}
    wrapped = apply_lora(base, LoraConfig(rank_qv=2, rank_emb=2, alpha=4.0), seed=0)
    tuned = train(MODEL, cfg, WINDOWS, VAL, tmp_path / "lora", init=wrapped, progress=False).model
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())  # the caller's models untouched
    start = dict(wrapped.named_parameters())
    for name, p in tuned.named_parameters():  # the LoRA matrices moved, every frozen weight stayed
        assert p.requires_grad == start[name].requires_grad
        assert torch.equal(p, start[name]) != p.requires_grad, name
    assert merge_lora(tuned).cfg == MODEL


def test_init_of_another_shape_raises_and_a_different_init_does_not_resume(tmp_path: Path) -> None:
    cfg = TrainConfig(steps=4, batch_size=8, micro_batch_size=4, lr=3e-3, warmup_steps=0, eval_every=4, eval_batches=2,
                      checkpoint_every=2, log_every=2)
    with pytest.raises(ValueError, match="init model config"):
        train(MODEL, cfg, WINDOWS, VAL, tmp_path, init=GPT(GPTConfig(vocab_size=8, context=16, depth=1, width=32, heads=2)))
    torch.manual_seed(1)
    first, second = GPT(MODEL), GPT(MODEL)
    train(MODEL, cfg, WINDOWS, VAL, tmp_path / "ck", init=first, stop_after=2, progress=False)
    with pytest.warns(UserWarning):
        result = train(MODEL, cfg, WINDOWS, VAL, tmp_path / "ck", init=second, progress=False)
    assert result.resumed_from is None
    assert train(MODEL, cfg, WINDOWS, VAL, tmp_path / "ck2", init=first, stop_after=2, progress=False).resumed_from is None
    assert train(MODEL, cfg, WINDOWS, VAL, tmp_path / "ck2", init=first, progress=False).resumed_from == 2


def test_segment_start_reaches_the_model_in_training_and_validation(tmp_path: Path) -> None:
    """With segment_start every loss is the model's loss with attention kept inside each packed example: on
    identical windows (any batch is the same batch) the first train loss is the seeded fresh model's and the
    val loss the trained model's, each with segments, and both differ from whole-window attention."""
    window = np.tile(np.array([3, 1, 2, 0, 4, 5, 6, 0, 2, 1, 3, 5, 0, 6, 4, 1, 2], dtype=np.uint16), (8, 1))
    cfg = TrainConfig(steps=1, batch_size=4, micro_batch_size=4, lr=1e-3, eval_every=1, eval_batches=1,
                      log_every=1, checkpoint_every=1, segment_start=0)
    result = train(MODEL, cfg, window, window, tmp_path / "seg", progress=False)
    torch.manual_seed(cfg.seed)
    fresh = GPT(MODEL)
    x, y = (torch.from_numpy(window[:4, :-1].astype(np.int64)), torch.from_numpy(window[:4, 1:].astype(np.int64)))
    with torch.no_grad():
        segmented, whole = fresh(x, y, segment_start=0)[1].item(), fresh(x, y)[1].item()
    assert abs(segmented - whole) > 1e-4
    assert result.history[0]["loss"] == pytest.approx(segmented, abs=1e-6)
    with torch.no_grad():  # the val loss is taken after the one update, on the model train() returns
        trained = result.model.eval()
        assert result.history[0]["val_loss"] == pytest.approx(trained(x, y, segment_start=0)[1].item(), abs=1e-6)
        assert abs(trained(x, y)[1].item() - result.history[0]["val_loss"]) > 1e-4
    plain = train(MODEL, dataclasses.replace(cfg, segment_start=None), window, window, tmp_path / "plain", progress=False)
    assert plain.history[0]["loss"] == pytest.approx(whole, abs=1e-6)
    with pytest.raises(ValueError, match=r"TrainConfig\.segment_start"):
        dataclasses.replace(cfg, segment_start=-1)
