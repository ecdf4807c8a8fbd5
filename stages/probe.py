"""probe@STUDY: the world's probes of the trained model and its controls (physlm/worlds/<world>/probe.py).

Writes metrics/STUDY/probe.json (DVC metrics: the world's few headline numbers), metrics/STUDY/detail/probe.json
(the world's whole summary, which the report reads) and each of the world's tables as
metrics/STUDY/probe/<table>.csv (every world: probe; the grammar world also its attention analysis:
attention_distance, attention_boundary, attention_layers); logs the summary to MLflow and the stage's wall-clock
time to logs/STUDY/probe.json (untracked) and MLflow.
"""

import time

import torch

from physlm import worlds
from physlm.cli import run_stage
from physlm.device import pick_device
from physlm.io import Paths, atomic_path, write_csv, write_json
from physlm.tracking import start_run


def main(paths: Paths, cfg) -> None:
    step = worlds.get(cfg.world).step("probe")
    device = pick_device()
    start = time.perf_counter()
    with start_run(paths.study, "probe", cfg.model_dump(), device=str(device)) as run:
        probed = step.probe(paths, cfg, device)
        seconds = time.perf_counter() - start
        run.log_metrics(probed.log | {"seconds": seconds})
        with atomic_path(paths.metrics / "probe", is_dir=True) as tables:
            for name, rows in probed.tables.items():
                write_csv(tables / f"{name}.csv", rows)
        write_json(paths.metrics / "detail" / "probe.json", probed.summary)
        write_json(paths.metrics / "probe.json", probed.headline)
        write_json(paths.logs / "probe.json", {"seconds": seconds, "device": str(device)})
    print(f"probe@{paths.study}: {probed.line}")


if __name__ == "__main__":
    torch.set_grad_enabled(True)
    run_stage("probe", main)
