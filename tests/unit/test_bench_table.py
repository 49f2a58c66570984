"""`paretopo bench`'s results: the warm start, every method over seeds with 95 % intervals,
the known ideal, and which paired differences the seeds resolve."""

from __future__ import annotations

import json
import math

import pytest

from paretopo.app.bench import mean_ci, write_bench

OBJECTIVES = ["accuracy", "tool_efficiency"]


def _report(em: float, calls: float, hv: float) -> dict:
    def point(e: float, c: float) -> dict:
        return {"em": e, "tool_calls": c, "accuracy": e, "tool_efficiency": 0.5}

    return {"objectives": OBJECTIVES, "start": point(0.1, 1.2), "end": point(em, calls),
            "ideal": {"em": 1.0, "tool_calls": 0.88}, "hypervolume": hv,
            "by_difficulty": {"needs a tool": {"start_calls": 1.3, "end_calls": calls + 0.1}},
            "evaluations": [{"step": 0, "accuracy": 0.1, "tool_efficiency": 0.4},
                            {"step": 4, "accuracy": em, "tool_efficiency": 0.5}]}


def test_mean_ci_is_the_student_t_interval() -> None:
    mean, half = mean_ci([0.30, 0.32, 0.34])
    assert mean == pytest.approx(0.32) and half == pytest.approx(4.303 * 0.02 / math.sqrt(3),
                                                                 rel=1e-3)
    assert math.isnan(mean_ci([0.5])[1]) and math.isnan(mean_ci([])[0])


def test_table_has_start_methods_intervals_ideal_and_verdicts(tmp_path) -> None:
    results = {task: {"grpo": {s: _report(0.30 + 0.01 * s, 1.1, 0.2) for s in range(3)},
                      "paretopo": {s: _report(0.40 + 0.01 * s, 0.9, 0.3) for s in range(3)}}
               for task in ("calc", "kbqa")}
    text = write_bench(tmp_path, ["calc", "kbqa"], ["grpo", "paretopo"], results, [0, 1, 2],
                       "2.0 min")
    rows = [line for line in text.splitlines() if line.startswith("|")]
    names = [row.split("|")[1].strip() for row in rows[2:]]
    assert names == ["warm start (before RL)", "grpo", "paretopo", "ideal point"]
    assert "0.410 ± 0.025" in rows[4]  # paretopo EM over three seeds
    assert "0.880" in rows[-1]
    assert all(row.count("|") == rows[0].count("|") for row in rows)  # no stray separator
    # a constant paired difference has a zero-width interval: resolved
    assert "calc: paretopo − grpo, EM: +0.100 [+0.100, +0.100] over 3 seed(s): resolved" in text
    assert json.loads((tmp_path / "results.json").read_text())["calc"]["grpo"]["0"]["end"]
    assert (tmp_path / "fronts-calc.png").stat().st_size > 0


def test_noisy_differences_are_not_resolved(tmp_path) -> None:
    results = {"calc": {"grpo": {0: _report(0.30, 1.0, 0.2), 1: _report(0.40, 1.0, 0.2)},
                        "paretopo": {0: _report(0.40, 1.0, 0.2), 1: _report(0.30, 1.0, 0.2)}}}
    text = write_bench(tmp_path, ["calc"], ["grpo", "paretopo"], results, [0, 1], "1 min")
    assert "EM: +0.000" in text and "not resolved" in text
