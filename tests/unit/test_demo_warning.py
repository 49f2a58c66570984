"""A warm start that RL cannot improve is said plainly, live and in the report."""

from __future__ import annotations

from paretopo.app.demo import (
    NEEDS_TOOL,
    WARM_START_FLOOR,
    DemoReport,
    report_markdown,
    warm_start_warning,
)


def test_warning_only_below_the_floor():
    assert warm_start_warning(None) is None  # a task without tool-needing prompts
    assert warm_start_warning(0.21) is None
    assert warm_start_warning(WARM_START_FLOOR) is None
    text = warm_start_warning(0.004)
    assert text is not None and "0.4%" in text and "--seed" in text


def _report(start_em: float) -> DemoReport:
    row = {"start_em": start_em, "end_em": start_em, "start_calls": 1.0, "end_calls": 1.0,
           "ideal_calls": 1.0}
    return DemoReport(
        run_id="r", task="calc", algorithm="paretopo", objectives=["accuracy", "tool_efficiency"],
        steps=40, final_stage=2, stopped_by="steps", start={"em": 0.01, "tool_calls": 1.0},
        end={"em": 0.01, "tool_calls": 1.0}, ideal={"em": 1.0, "tool_calls": 0.8},
        distance={"em_gap": 0.99, "extra_calls": 0.2}, by_difficulty={NEEDS_TOOL: row},
        front=[], hypervolume=0.0, weights=[0.5, 0.5], rho=0.5, known_prompts=0,
        stage_switch_step=20, weights_history=[], evaluations=[], groups_consumed=0, wall_s=60.0,
        page="http://127.0.0.1:8080/", plot="front.png", trajectory_plot="trajectory.png",
        samples_per_prompt=8, eval_temperature=1.0)


def test_report_carries_the_warning_for_a_failed_warm_start():
    assert "Warning: the warm start answers 0.0%" in report_markdown(_report(0.0))
    assert "Warning" not in report_markdown(_report(0.3))
