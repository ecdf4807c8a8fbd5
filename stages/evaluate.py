"""evaluate@STUDY: the world's evaluation of the trained model (physlm/worlds/<world>/evaluate.py): generation
judged exactly (grammars: membership; iGSM: the whole solution; biographies: exact-match QA), with its
controls -> metrics/STUDY/evaluate.json (DVC metrics: the world's few headline numbers),
metrics/STUDY/detail/evaluate.json (everything, which the report reads) and generations/STUDY/evaluate.parquet
(every judged sample: prompt, output, verdict, the judge's first error; DVC-cached, not in git; columns in
`physlm.worlds.Evaluated`); the world's log to MLflow, and the stage's wall-clock time to logs/STUDY/evaluate.json
(untracked) and MLflow."""

import time

from physlm import worlds
from physlm.cli import run_stage
from physlm.device import pick_device
from physlm.io import Paths, write_json, write_parquet
from physlm.tracking import start_run


def check_generations(world: str, frame) -> None:
    """The generations table has rows and the common columns with their dtypes (`physlm.worlds.Evaluated`), and
    output, verdict and error all or none; ValueError naming the world otherwise (its bug: nothing is written)."""
    wanted = worlds.COMMON_COLUMNS | (worlds.GENERATED_COLUMNS if set(worlds.GENERATED_COLUMNS) & set(frame.columns) else {})
    wrong = [f"{c} ({frame.schema[c] if c in frame.columns else 'missing'}, not {dtype})" for c, dtype in wanted.items()
             if c not in frame.columns or str(frame.schema[c]) != dtype]
    if wrong or frame.is_empty():
        raise ValueError(f"world {world!r}: its evaluate step's generations table "
                         + (f"has wrong column(s): {', '.join(wrong)}" if wrong else "has no rows"))


def main(paths: Paths, cfg) -> None:
    step = worlds.get(cfg.world).step("evaluate")
    device = pick_device()
    start = time.perf_counter()
    with start_run(paths.study, "evaluate", cfg.model_dump(), device=str(device)) as run:
        evaluated = step.evaluate(paths, cfg, device)
        check_generations(cfg.world, evaluated.generations)
        seconds = time.perf_counter() - start
        run.log_metrics(evaluated.log | {"seconds": seconds})
        write_parquet(paths.generations / "evaluate.parquet", evaluated.generations)
        write_json(paths.metrics / "detail" / "evaluate.json", evaluated.metrics)
        write_json(paths.metrics / "evaluate.json", evaluated.headline)
        write_json(paths.logs / "evaluate.json", {"seconds": seconds, "device": str(device)})
    print(f"evaluate@{paths.study}: {evaluated.line}")


if __name__ == "__main__":
    run_stage("evaluate", main)
