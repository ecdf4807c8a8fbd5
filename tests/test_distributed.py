"""physlm.distributed: 2 CPU processes (gloo) train like 1 process with 2 accumulation steps, under DDP and
FSDP2, on loss-masked windows (counting the same targets), and on a stream of windows from the world
generator with attention kept inside packed examples; a
resumed 2-process run equals an uninterrupted one; only rank 0 writes and logs; the launcher runs the train
stage through torchrun."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import yaml

from physlm.distributed import Ranks, current, main
from physlm.model import GPTConfig
from physlm.stream import Stream, StreamSpec
from physlm.train import TrainConfig, TrainResult, train

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
TIMING = ("tokens_per_s", "data_wait", "mfu")
# 12 updates of a global batch of 8: 2 micro-steps of 4 on 1 process, 1 micro-step of 4 on each of 2.
CONFIG = {"steps": 12, "batch_size": 8, "micro_batch_size": 4, "lr": 3e-3, "warmup_steps": 2, "eval_every": 6,
          "eval_batches": 2, "checkpoint_every": 4, "log_every": 1}


def data() -> tuple:
    from test_train import MODEL, VAL, WINDOWS

    return MODEL, WINDOWS, VAL


def masked_data() -> tuple:
    """test_train's windows with its loss masks."""
    from test_train import LOSS, VAL, VAL_LOSS, WINDOWS

    from physlm.tokenize import Windows

    return Windows(WINDOWS, LOSS), Windows(VAL, VAL_LOSS)


def stream_tokens(out: Path) -> None:
    """The tokens dir of a small grammar dataset (stream layout, context 64: windows hold several sentences)."""
    from test_stream import cfg_spec

    cfg_spec(out, context=64, pack="stream")


def stream_data(out: Path) -> tuple:
    """The stream of `stream_tokens`' dataset, a model for it and 8 val windows from further down the stream."""
    spec = StreamSpec.load(out / "cfg-64-stream")
    model_cfg = GPTConfig(vocab_size=spec.vocab_size, context=spec.context, depth=2, width=32, heads=2)
    return model_cfg, Stream(spec, workers=1), spec.windows(range(1000, 1008))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank: int, port: int, out: Path, device: str) -> None:
    """One of 2 ranks (gloo on CPU, nccl on cuda:RANK): runs every scenario in one process group, records what
    it wrote and logged."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dev = torch.device("cuda", rank) if device == "cuda" else torch.device("cpu")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", rank=rank, world_size=2)
    saved: list[str] = []
    real_save = torch.save
    torch.save = lambda obj, path, *a, **kw: (saved.append(str(path)), real_save(obj, path, *a, **kw))[1]
    model_cfg, windows, val = data()
    runs, logged = {}, []
    plan = [("ddp", "ddp", None), ("resumed", "ddp", 10), ("resumed", "ddp", None), ("fsdp", "fsdp", None)]
    for name, parallel, stop in plan:
        cfg = TrainConfig(**CONFIG, parallel=parallel)
        result = train(model_cfg, cfg, windows, val, out / name, stop_after=stop, device=dev, progress=False,
                       on_log=logged.append)
        whole = rank == 0 or parallel == "ddp"  # FSDP: the other ranks keep shards
        weights = {k: v.detach().cpu().clone() for k, v in result.model.state_dict().items()} if whole else {}
        runs[name] = {"history": result.history, "resumed_from": result.resumed_from, "weights": weights}
    masked, masked_val = masked_data()
    result = train(model_cfg, TrainConfig(**CONFIG), masked, masked_val, out / "masked", device=dev, progress=False,
                   on_log=logged.append)
    runs["masked"] = {"history": result.history, "resumed_from": result.resumed_from, "targets_seen": result.targets_seen,
                      "weights": {k: v.detach().cpu().clone() for k, v in result.model.state_dict().items()}}
    stream_cfg, source, stream_val = stream_data(out)  # streamed windows, attention inside packed examples
    result = train(stream_cfg, TrainConfig(**CONFIG, segment_start=0), source, stream_val, out / "stream", device=dev,
                   progress=False, on_log=logged.append)
    runs["stream"] = {"history": result.history, "resumed_from": result.resumed_from,
                      "weights": {k: v.detach().cpu().clone() for k, v in result.model.state_dict().items()}}
    dist.destroy_process_group()
    torch.save = real_save
    torch.save({"runs": runs, "saved": saved, "logged": len(logged)}, out / f"rank{rank}.pt")


def two_ranks(out: Path, device: str) -> list[dict]:
    stream_tokens(out)
    mp.start_processes(worker, args=(free_port(), out, device), nprocs=2, join=True, start_method="spawn")
    return [torch.load(out / f"rank{r}.pt", weights_only=True) | {"dir": out} for r in range(2)]


def one_rank(out: Path, device: str) -> TrainResult:
    model_cfg, windows, val = data()
    return train(model_cfg, TrainConfig(**CONFIG), windows, val, out, device=device, progress=False)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    return two_ranks(tmp_path_factory.mktemp("ddp"), "cpu")


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return one_rank(tmp_path_factory.mktemp("one"), "cpu")


def test_two_processes_stream_like_one_with_accumulation(ranks: list[dict]) -> None:
    """Each rank streams its own micro-batches (windows j of the global batch it owns) and masks attention at
    <bos>: the run equals one process with 2 accumulation steps on the same stream."""
    model_cfg, source, val = stream_data(ranks[0]["dir"])
    single = train(model_cfg, TrainConfig(**CONFIG, segment_start=0), source, val, ranks[0]["dir"] / "stream-one",
                   progress=False)
    assert_same_training(ranks[0]["runs"]["stream"], single, rtol=1e-6, atol=1e-6)


def without_timing(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING} for row in history]


def assert_same_training(run: dict, single: TrainResult, rtol: float, atol: float) -> None:
    assert [row["step"] for row in run["history"]] == [row["step"] for row in single.history]
    for key in ("loss", "val_loss"):
        ours = [row[key] for row in run["history"] if key in row]
        theirs = [row[key] for row in single.history if key in row]
        assert len(ours) == len(theirs) > 0
        np.testing.assert_allclose(ours, theirs, rtol=rtol, err_msg=key)
    assert run["weights"].keys() == single.model.state_dict().keys()
    for name, weight in single.model.state_dict().items():
        torch.testing.assert_close(run["weights"][name], weight.cpu(), rtol=0, atol=atol, msg=name)


@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_two_processes_train_like_one_with_accumulation(ranks: list[dict], single: TrainResult, parallel: str) -> None:
    assert_same_training(ranks[0]["runs"][parallel], single, rtol=1e-6, atol=1e-6)


def test_two_processes_train_on_masked_windows_like_one(ranks: list[dict]) -> None:
    model_cfg, *_ = data()
    masked, masked_val = masked_data()
    single = train(model_cfg, TrainConfig(**CONFIG), masked, masked_val, ranks[0]["dir"] / "masked-one", progress=False)
    assert_same_training(ranks[0]["runs"]["masked"], single, rtol=1e-6, atol=1e-6)
    assert ranks[0]["runs"]["masked"]["targets_seen"] == ranks[1]["runs"]["masked"]["targets_seen"] == single.targets_seen
    assert [row["targets_seen"] for row in ranks[0]["runs"]["masked"]["history"]] == \
        [row["targets_seen"] for row in single.history]


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_two_gpus_train_like_one(tmp_path: Path) -> None:
    """nccl, bf16 autocast: the same training within bf16 rounding."""
    single = one_rank(tmp_path / "one", "cuda:0")
    for parallel, run in two_ranks(tmp_path, "cuda")[0]["runs"].items():
        if parallel in ("ddp", "fsdp"):  # the others train on other data or are cut short
            assert_same_training(run, single, rtol=2e-2, atol=2e-3)


def test_resumed_two_process_run_equals_uninterrupted(ranks: list[dict]) -> None:
    whole, resumed = ranks[0]["runs"]["ddp"], ranks[0]["runs"]["resumed"]
    assert resumed["resumed_from"] == 8  # the last checkpoint before the interruption at 10
    assert without_timing(resumed["history"]) == without_timing(whole["history"])
    for name, weight in whole["weights"].items():
        assert torch.equal(resumed["weights"][name], weight), name
    assert torch.equal(ranks[1]["runs"]["resumed"]["weights"]["wte.weight"], whole["weights"]["wte.weight"])


def test_only_rank_zero_writes_and_logs(ranks: list[dict]) -> None:
    first, second = ranks
    assert second["saved"] == [] and second["logged"] == 0
    assert all(not run["history"] for name, run in second["runs"].items() if name != "resumed")
    written = {Path(p).parent.name for p in first["saved"]}
    assert written == {"ddp", "resumed", "fsdp", "masked", "stream"} and first["logged"] > 0
    assert sorted(p.name for p in (first["dir"] / "ddp").iterdir()) == ["checkpoint.pt"]


def test_a_single_process_is_a_world_of_one() -> None:
    assert current() == Ranks(0, 1) and Ranks().main


def test_launcher_runs_one_process_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "echo_stage.py").write_text("import sys, pathlib\n"
                                            "pathlib.Path(sys.argv[1]).write_text(repr((__name__, sys.argv)))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    out = tmp_path / "argv.txt"
    main(["1", "echo_stage", str(out)])
    assert out.read_text() == repr(("__main__", [str(tmp_path / "echo_stage.py"), str(out)]))


def test_launcher_rejects_a_bad_process_count() -> None:
    with pytest.raises(SystemExit, match="usage"):
        main(["two", "stages.train", "x"])
    with pytest.raises(SystemExit, match="positive"):
        main(["0", "stages.train", "x"])


def test_train_stage_under_torchrun_writes_once(tmp_path: Path) -> None:
    """`python -m physlm.distributed 2 stages.train STUDY`: 2 gloo ranks, one model and one train.json."""
    from conftest import tiny_params

    from test_train import cyclic_windows

    params = tiny_params()
    params["train"].update(micro_batch_size=4)  # batch 8 = 2 ranks x 4
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    tokens = tmp_path / "data/cfg_demo/tokens"
    tokens.mkdir(parents=True)
    np.save(tokens / "train.npy", cyclic_windows(64))
    np.save(tokens / "test.npy", cyclic_windows(16, seed=1))
    (tokens / "meta.json").write_text(json.dumps({"vocab_size": 8, "context": 16}))
    env = {**os.environ, "PHYSLM_TRACKING": "0", "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "physlm.distributed", "2", "stages.train", "cfg_demo"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((tmp_path / "metrics/cfg_demo/detail/train.json").read_text())
    timing = json.loads((tmp_path / "logs/cfg_demo/train.json").read_text())
    assert metrics["world_size"] == 2 and timing["data_wait"] is not None and timing["mfu"] is None
    assert (tmp_path / "models/cfg_demo/model.safetensors").is_file()
    assert not (tmp_path / "checkpoints/cfg_demo").exists()
    assert done.stdout.count("train@cfg_demo: loss") == 1
