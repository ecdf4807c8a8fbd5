"""Throughput of the iGSM generator (physlm.worlds.igsm.generator.generate_frame) for the med and hard presets.

Times whole frames (generation with every rejection, text, hash, the Parquet-ready frame) on one in-process
worker and on all cores (spawned workers, start-up included), and prints a markdown section (machine,
command, table) ready to paste into benchmarks/RESULTS.md; --out also writes it to a file.

    python benchmarks/bench_igsm.py [--n N] [--out FILE]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import time
from pathlib import Path

from physlm.worlds.igsm.graph import HARD, MED, IgsmSpec
from physlm.worlds.igsm.frames import generate_frame
from physlm.worlds.igsm.knowledge import load_knowledge


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the pool's workers once it has closed)."""
    return sum(r.ru_utime + r.ru_stime for r in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)))


def rate(spec: IgsmSpec, n: int, workers: int) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, mean op) for n training problems on `workers` processes."""
    start, cpu = time.perf_counter(), cpu_seconds()
    frame = generate_frame(spec, 2024, n, workers=workers, shard_size=max(50, n // (4 * workers)), progress=False)
    return time.perf_counter() - start, cpu_seconds() - cpu, frame["op"].mean()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000, help="problems per measurement")
    parser.add_argument("--out", type=Path, default=None, help="also write the section to this file")
    args = parser.parse_args()
    load_knowledge()
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0]
    rows = ["| preset | workers | problems | mean op | wall s | problems/s | CPU s | problems per CPU-second |",
            "|---|---|---|---|---|---|---|---|"]
    for label, spec in (("med", MED), ("hard", HARD)):
        for workers in sorted({1, cores}):
            seconds, cpu, mean_op = rate(spec, args.n, workers)
            rows.append(f"| {label} (max_op {spec.max_op}, max_edge {spec.max_edge}) | {workers} | {args.n} | {mean_op:.2f} "
                        f"| {seconds:.2f} | {args.n / seconds:.0f} | {cpu:.2f} | {args.n / cpu:.0f} |")
            print(rows[-1], flush=True)
    section = [
        "## iGSM problem generation throughput",
        "",
        f"Date {datetime.date.today().isoformat()}; machine {platform.platform()} ({platform.machine()}, {cores} CPUs, "
        f"1-min load average {load:.1f} at start, {os.getloadavg()[0]:.1f} at end); Python {platform.python_version()}. "
        f"Command: `python benchmarks/bench_igsm.py --n {args.n}`.",
        "",
        "Training-split problems (paper bucket rule, pq), every rejection included; multi-worker rows include",
        "starting the spawned processes. CPU s counts this process and its workers, so problems per CPU-second",
        "is the per-core rate even on a shared machine.",
        "",
        *rows,
        "",
    ]
    print("\n".join(section))
    if args.out is not None:
        args.out.write_text("\n".join(section), encoding="utf-8")


if __name__ == "__main__":
    main()
