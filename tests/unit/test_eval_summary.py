"""The evaluation summary splits each difficulty by whether a sample called the tool, which is
how docs/testbed.md shows what an answer from memory is worth against one with the tool."""

from __future__ import annotations

import pytest

from paretopo.app.evaluation import EvalSettings, ItemResult, summarise


def _item(level: str, correct: list[bool], calls: list[int], min_calls: int) -> ItemResult:
    return ItemResult(id=f"{level}-{len(correct)}", golds=["1"], correct=correct,
                      tool_calls=calls, r_tool=[0.0] * len(calls), difficulty=level,
                      min_calls=min_calls, answers=["1"] * len(calls),
                      finish_reasons=["answer"] * len(calls))


def test_per_difficulty_em_with_and_without_the_tool():
    items = [_item("easy", [True, False, True, True], [0, 0, 1, 2], 0),
             _item("hard", [False, True, True, False], [0, 1, 1, 1], 1)]
    report = summarise("t", EvalSettings(model_path="m", samples=4), "testbed", items, 1.0)
    easy, hard = report.by_difficulty["easy"], report.by_difficulty["hard"]
    assert easy["em"] == pytest.approx(0.75) and easy["tool_calls"] == pytest.approx(0.75)
    assert easy["no_tool_share"] == pytest.approx(0.5)
    assert easy["em_no_tool"] == pytest.approx(0.5) and easy["em_with_tool"] == pytest.approx(1)
    assert hard["no_tool_share"] == pytest.approx(0.25)
    assert hard["em_no_tool"] == pytest.approx(0.0)
    assert hard["em_with_tool"] == pytest.approx(2 / 3)
    assert report.needs_tool == hard


def test_a_side_nobody_took_is_none_not_zero():
    items = [_item("easy", [True, True], [0, 0], 0)]
    stats = summarise("t", EvalSettings(model_path="m", samples=2), "testbed", items,
                      1.0).by_difficulty["easy"]
    assert stats["em_no_tool"] == 1.0 and stats["em_with_tool"] is None
