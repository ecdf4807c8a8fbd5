"""evaluate@STUDY: the world's evaluation of the trained model (physlm/worlds/<world>/evaluate.py): generation
judged exactly (grammars: membership; iGSM: the whole solution; biographies: exact-match QA), with its
controls -> metrics/STUDY/evaluate.json, and the headline numbers logged to MLflow."""

from physlm import worlds
from physlm.cli import run_stage
from physlm.device import pick_device
from physlm.io import Paths, write_json
from physlm.tracking import start_run


def main(paths: Paths, cfg) -> None:
    step = worlds.get(cfg.world).step("evaluate")
    device = pick_device()
    with start_run(paths.study, "evaluate", cfg.model_dump(), device=str(device)) as run:
        evaluated = step.evaluate(paths, cfg, device)
        run.log_metrics(evaluated.log)
        write_json(paths.metrics / "evaluate.json", evaluated.metrics)
    print(f"evaluate@{paths.study}: {evaluated.line}")


if __name__ == "__main__":
    run_stage("evaluate", main)
