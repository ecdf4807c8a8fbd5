"""report: every study's metrics -> reports/summary.md and PNG figures (physlm/report.py)."""

from pathlib import Path

from physlm.cli import Paths, run_stage
from physlm.config import ReportStage
from physlm.io import atomic_path
from physlm.report import write_report


def main(paths: Paths, cfg: ReportStage) -> None:
    with atomic_path(Path("reports"), is_dir=True) as tmp:
        write_report(cfg.studies, Path("metrics"), tmp)
    print(f"report: {len(cfg.studies)} studies -> reports/summary.md")


if __name__ == "__main__":
    run_stage("report", main)
