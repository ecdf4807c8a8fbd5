"""generate@STUDY: sample the study's world into data/STUDY/raw/ (Parquet, see physlm/generate.py)."""

from physlm.cli import Paths, run_stage
from physlm.config import GenerateStage
from physlm.generate import generate_cfg, resolve_bags, resolve_grammar
from physlm.io import atomic_path


def main(paths: Paths, cfg: GenerateStage) -> None:
    resolve_bags(cfg.generate, resolve_grammar(cfg.generate.grammar))  # fail on bad params before anything is written
    with atomic_path(paths.raw, is_dir=True) as tmp:
        counts = generate_cfg(cfg.generate, cfg.seed, tmp)
    print(f"generate@{paths.study}: {counts} -> {paths.raw}")


if __name__ == "__main__":
    run_stage("generate", main)
