"""evaluate@STUDY: the world's evaluation of the trained model (physlm/worlds/<world>/evaluate.py): generation
judged exactly (grammars: membership; iGSM: the whole solution; biographies: exact-match QA), with its
controls -> metrics/STUDY/evaluate.json (DVC metrics: the world's few headline numbers) and
metrics/STUDY/detail/evaluate.json (everything, which the report reads); the world's log to MLflow, and the
stage's wall-clock time to logs/STUDY/evaluate.json (untracked) and MLflow."""

import time

from physlm import worlds
from physlm.cli import run_stage
from physlm.device import pick_device
from physlm.io import Paths, write_json
from physlm.tracking import start_run


def main(paths: Paths, cfg) -> None:
    step = worlds.get(cfg.world).step("evaluate")
    device = pick_device()
    start = time.perf_counter()
    with start_run(paths.study, "evaluate", cfg.model_dump(), device=str(device)) as run:
        evaluated = step.evaluate(paths, cfg, device)
        seconds = time.perf_counter() - start
        run.log_metrics(evaluated.log | {"seconds": seconds})
        write_json(paths.metrics / "detail" / "evaluate.json", evaluated.metrics)
        write_json(paths.metrics / "evaluate.json", evaluated.headline)
        write_json(paths.logs / "evaluate.json", {"seconds": seconds, "device": str(device)})
    print(f"evaluate@{paths.study}: {evaluated.line}")


if __name__ == "__main__":
    run_stage("evaluate", main)
