"""report: every study's metrics -> reports/summary.md and PNG figures (physlm/report.py and each world's
report section, physlm/worlds/<world>/report.py). Reads metrics files only."""

from pathlib import Path

from physlm.cli import run_stage
from physlm.io import Paths, atomic_path
from physlm.report import write_report


def main(paths: Paths, cfg) -> None:
    with atomic_path(Path("reports"), is_dir=True) as tmp:
        write_report(cfg.studies, Path("metrics"), tmp)
    print(f"report: {len(cfg.studies)} studies -> reports/summary.md")


if __name__ == "__main__":
    run_stage("report", main)
