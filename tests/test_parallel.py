"""physlm/parallel.py: jobs side by side in spawned processes give what one process gives, in job order,
and errors come back; the iGSM eval-set job gives the same attempts and checks either way."""

from __future__ import annotations

import operator
import os

import pytest
import torch

from physlm.artifacts import random_model
from physlm.worlds.igsm.evaluate import evaluate_set
from physlm.worlds.igsm.tokenize import vocabulary
from physlm.model import GPTConfig
from physlm.parallel import cpu_map, resolve_workers
from physlm.worlds.igsm.graph import IgsmSpec
from physlm.worlds.igsm.problems import generate_problem

pytestmark = pytest.mark.usefixtures("one_thread")


def test_results_come_back_in_job_order() -> None:
    jobs = [(n, 7) for n in range(40, 0, -3)]
    assert cpu_map(divmod, jobs, 1) == cpu_map(divmod, jobs, 3) == [divmod(*job) for job in jobs]
    assert cpu_map(divmod, [], 2) == []


def test_workers_are_other_processes_with_their_share_of_the_threads() -> None:
    pids = cpu_map(os.getpid, [()] * 4, 2)
    assert os.getpid() not in pids and len(set(pids)) <= 2
    assert cpu_map(os.getpid, [()] * 3, 1) == [os.getpid()] * 3  # one worker: this process
    assert cpu_map(torch.get_num_threads, [()] * 2, 2) == [1, 1]


def test_an_error_in_a_job_is_raised() -> None:
    with pytest.raises(ZeroDivisionError):
        cpu_map(operator.truediv, [(1, 1), (1, 0), (2, 1)], 2)


def test_resolve_workers() -> None:
    assert resolve_workers(3) == 3 and resolve_workers(0) == (os.cpu_count() or 1)
    with pytest.raises(ValueError, match="workers"):
        resolve_workers(-1)


def test_eval_sets_side_by_side_match_one_process() -> None:
    vocab = vocabulary()
    spec = IgsmSpec(max_op=3, max_edge=6, max_layers=3, max_items=2, names=4)
    problems = [generate_problem(spec, 3, i) for i in range(6)]
    model = random_model(GPTConfig(vocab_size=vocab.size, context=256, depth=1, width=32, heads=2), seed=0)
    jobs = [(model, problems[:3], vocab, "test", (1, 2), 4), (model, problems[3:], vocab, "opmax", (1,), 4)]
    serial, side = cpu_map(evaluate_set, jobs, 1), cpu_map(evaluate_set, jobs, 2)
    assert serial == side
    attempts, forced = serial[0]
    assert [(a.eval_set, a.decoding) for a in attempts] == [("test", "greedy")] * 3 + [("test", "beam2")] * 3
    assert forced["problems"] == 3 and forced["steps"] == sum(len(p.order) for p in problems[:3])
