"""The report's iGSM parts: the depth-vs-width figure groups studies of one dataset by size, and the summary
lists accuracy, level-1 statistics and V-probes."""

from __future__ import annotations

from pathlib import Path

from physlm.worlds.igsm.report import markdown, plot_depth


def study(depth: int, params: int, test: float, opmax: float, data: str = "p21") -> dict:
    found = {"n": 10, "accuracy": test, "answer_accuracy": test, "unnecessary_params_per_correct": 0.0,
             "unnecessary_ops_per_correct": 0.0, "errors": {"arithmetic": 1}, "by_op": {"3": {"n": 10, "accuracy": test}}}
    return {"train": {"model": {"depth": depth}, "params": params, "data": data},
            "evaluate": {"test": {"greedy": found}, "opmax": {"greedy": {**found, "accuracy": opmax}}},
            "tables": {"probe": [{"model": "trained", "property": "nece", "accuracy": "0.9", "accuracy_pos": "0.8",
                                  "accuracy_neg": "0.95", "majority": "0.7"}]}}


def test_depth_figure_needs_two_depths_at_one_size(tmp_path: Path) -> None:
    same_size = {"a": study(4, 100_000_000, 0.5, 0.3), "b": study(12, 95_000_000, 0.9, 0.8), "c": study(20, 92_000_000, 0.95, 0.9)}
    assert plot_depth(same_size, tmp_path / "depth.png") and (tmp_path / "depth.png").stat().st_size > 0
    one_depth = {"a": study(4, 100_000_000, 0.5, 0.3), "b": study(4, 200_000_000, 0.9, 0.8)}
    assert not plot_depth(one_depth, tmp_path / "none.png") and not (tmp_path / "none.png").exists()
    other_data = {"a": study(4, 100_000_000, 0.5, 0.3), "b": study(12, 100_000_000, 0.9, 0.8, data="other")}
    assert not plot_depth(other_data, tmp_path / "none.png")


def test_igsm_summary_sections() -> None:
    text = markdown({"s": study(4, 1, 0.5, 0.25)})
    assert "| s | test | greedy | 10 | 0.500 |" in text and "| s | opmax | greedy | 10 | 0.250 |" in text
    assert "| s | nece | trained | 0.900 | 0.800 | 0.950 | 0.700 |" in text
    assert markdown({}) == ""
    reask = study(4, 1, 0.5, 0.25)
    reask["evaluate"]["reask"] = {"greedy": {**reask["evaluate"]["test"]["greedy"], "accuracy": 0.3, "by_op_range": {
        "max_op": 4, "op_le_max": {"n": 6, "accuracy": 0.5}, "op_gt_max": {"n": 4, "accuracy": 0.0}}}}
    assert "| s | reask | greedy | 10 | 0.300 (op <= 4: 0.500 of 6, > 4: 0.000 of 4) |" in markdown({"s": reask})


def test_teacher_forced_table_and_figure(tmp_path: Path) -> None:
    from physlm.worlds.igsm.report import plot_teacher_forced

    def forced(valid: float, lookup: float | None) -> dict:
        rest = (1 - valid) / 4
        return {"problems": 5, "steps": 12, "valid_chance": 0.2,
                "next_param": {"valid": valid, "unnecessary": rest, "redefined": rest, "not_ready": rest, "unknown": rest},
                "valid_by_op": {"1": {"n": 12, "accuracy": valid}},
                "parts": {"lookup": {"n": 0 if lookup is None else 4, "accuracy": lookup}, "operands": {"n": 8, "accuracy": 0.5},
                          "values": {"n": 8, "accuracy": 0.75}, "arithmetic": {"n": 3, "accuracy": 0.0}}}

    s = study(4, 1, 0.5, 0.25)
    s["evaluate"]["teacher_forced"] = {"control": forced(0.0, None), "test": forced(0.6, 0.5)}  # as read back: sorted
    text = markdown({"s": s})
    assert "| s | test | greedy | 10 | 0.500 |" in text and "| s | teacher_forced |" not in text
    assert "| s | test | 12 | 0.600 (0.200) | 0.100 / 0.100 / 0.100 / 0.100 | 0.500 (4) | 0.500 (8) | 0.750 (8) | 0.000 (3) |" in text
    assert "| s | control | 12 | 0.000 (0.200) |" in text
    assert text.index("| s | test | 12 |") < text.index("| s | control | 12 |")  # eval sets first, control last
    plot_teacher_forced(s["evaluate"]["teacher_forced"], tmp_path / "steps.png")
    assert (tmp_path / "steps.png").stat().st_size > 0
