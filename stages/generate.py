"""generate@DATASET: sample the dataset's world into data/DATASET/raw/ (Parquet, see physlm/generate.py)."""

from physlm.cli import Paths, run_stage
from physlm.config import GenerateStage
from physlm.generate import generate_bio, generate_cfg, generate_igsm, resolve_bags, resolve_grammar
from physlm.io import atomic_path


def main(paths: Paths, cfg: GenerateStage) -> None:
    if cfg.world == "cfg":
        resolve_bags(cfg.generate, resolve_grammar(cfg.generate.grammar))  # fail on bad params before anything is written
    write = {"cfg": generate_cfg, "igsm": generate_igsm, "bio": generate_bio}[cfg.world]
    with atomic_path(paths.raw, is_dir=True) as tmp:
        counts = write(cfg.generate, cfg.seed, tmp)
    print(f"generate@{paths.study}: {counts} -> {paths.raw}")


if __name__ == "__main__":
    run_stage("generate", main)
