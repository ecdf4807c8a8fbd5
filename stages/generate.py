"""generate@DATASET: sample the dataset's world into data/DATASET/raw/ (its generate step,
physlm/worlds/<world>/generate.py; the Parquet columns are in the world's package docstring)."""

from physlm import worlds
from physlm.cli import run_stage
from physlm.io import Paths, atomic_path


def main(paths: Paths, cfg) -> None:
    step = worlds.get(cfg.world).step("generate")
    with atomic_path(paths.raw, is_dir=True) as tmp:
        counts = step.generate(cfg.generate, cfg.seed, tmp)
    print(f"generate@{paths.study}: {counts} -> {paths.raw}")


if __name__ == "__main__":
    run_stage("generate", main)
