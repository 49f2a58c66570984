"""`paretopo bench`'s table: the warm start, every method and the known ideal, per task."""

from __future__ import annotations

import json

from paretopo.app.cli_demo import _write_bench

OBJECTIVES = ["accuracy", "tool_efficiency"]


def _report(em: float, calls: float, hv: float) -> dict:
    def point(e: float, c: float) -> dict:
        return {"em": e, "tool_calls": c, "accuracy": e, "tool_efficiency": 0.5}

    return {"objectives": OBJECTIVES, "start": point(0.1, 1.2), "end": point(em, calls),
            "ideal": {"em": 1.0, "tool_calls": 0.88}, "hypervolume": hv,
            "evaluations": [{"step": 0, "accuracy": 0.1, "tool_efficiency": 0.4},
                            {"step": 4, "accuracy": em, "tool_efficiency": 0.5}]}


def test_table_has_start_methods_and_ideal(tmp_path):
    results = {task: {"grpo": _report(0.3, 1.1, 0.2), "paretopo": _report(0.4, 0.9, 0.3)}
               for task in ("calc", "kbqa")}
    _write_bench(tmp_path, ["calc", "kbqa"], ["grpo", "paretopo"], results, 0, 2.0, None)
    rows = [line for line in (tmp_path / "table.md").read_text().splitlines()
            if line.startswith("|")]
    names = [row.split("|")[1].strip() for row in rows[2:]]
    assert names == ["warm start (before RL)", "grpo", "paretopo", "ideal point"]
    assert "0.88" in rows[-1] and "0.3" in rows[3]
    assert json.loads((tmp_path / "results.json").read_text()) == results
    assert (tmp_path / "fronts-calc.png").stat().st_size > 0
