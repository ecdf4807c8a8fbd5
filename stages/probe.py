"""probe@STUDY: the world's probes of the trained model and its controls (physlm/worlds/<world>/probe.py).

Writes metrics/STUDY/probe.json (the world's summary) and each of the world's tables as CSV (the grammar
world: probe, attention_distance, attention_boundary; iGSM and the biographies: probe), and logs the summary
to MLflow.
"""

import torch

from physlm import worlds
from physlm.cli import run_stage
from physlm.device import pick_device
from physlm.io import Paths, write_csv, write_json
from physlm.tracking import start_run


def main(paths: Paths, cfg) -> None:
    step = worlds.get(cfg.world).step("probe")
    device = pick_device()
    with start_run(paths.study, "probe", cfg.model_dump(), device=str(device)) as run:
        probed = step.probe(paths, cfg, device)
        run.log_metrics(probed.log)
        for name, rows in probed.tables.items():
            write_csv(paths.metrics / f"{name}.csv", rows)
        for name, data in probed.files.items():
            write_json(paths.metrics / f"{name}.json", data)
        write_json(paths.metrics / "probe.json", probed.summary)
    print(f"probe@{paths.study}: {probed.line}")


if __name__ == "__main__":
    torch.set_grad_enabled(True)
    run_stage("probe", main)
