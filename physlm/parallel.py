"""Independent pieces of CPU work (probe fits, evaluation sets) run side by side in spawned processes.

A small model's step is many small kernels, which a second thread speeds up far less than a second
process: on the 2-core VM a V-probe step runs 1.37x faster on 2 threads than on 1, beam search 1.46x, so two
single-threaded processes finish a set of such jobs ~1.5x sooner than one 2-thread process
(`benchmarks/RESULTS.md`). `cpu_map` runs fn(*job) for every job and returns the results in job order:
in this process when one worker is asked for (or the work is on a GPU, which the caller says), else in
`workers` spawned processes with cores // workers threads each. Jobs and results travel by pickling, so
fn must be a module-level function; an error in a job is raised here and the pool is shut down.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

import torch
from tqdm import tqdm


def resolve_workers(workers: int) -> int:
    """A `workers` setting: 0 means one per core."""
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    return workers or os.cpu_count() or 1


def cpu_map(fn: Callable[..., Any], jobs: Sequence[tuple], workers: int, desc: str = "jobs") -> list[Any]:
    """[fn(*job) for job in jobs], with up to `workers` processes (see the module docstring)."""
    workers = min(workers, len(jobs))
    if workers <= 1:
        return [fn(*job) for job in jobs]
    threads = max(1, torch.get_num_threads() // workers)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=torch.set_num_threads,
                             initargs=(threads,)) as pool:
        futures = [pool.submit(fn, *job) for job in jobs]
        try:
            for done in tqdm(as_completed(futures), total=len(futures), desc=f"{desc} ({workers} processes)", leave=False):
                done.result()  # the first error stops the wait
        except BaseException:
            for f in futures:
                f.cancel()
            raise
        return [f.result() for f in futures]
