"""`paretopo bench`'s results: every method on every task over several seeds with the same
budget, as means with 95 % intervals, and which differences the seeds resolve.

A difference between ParetoPO and a baseline is *resolved* when the 95 % interval of their
paired difference (same seed: same warm start, data order and validation samples) excludes
zero; otherwise the table says it is not, whatever the means suggest.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from statistics import fmean, stdev
from typing import Any

from scipy.stats import t as student_t

from paretopo.app.demo import NEEDS_TOOL
from paretopo.app.report import markdown_table, plot_method_fronts

#: (key, column label) of the numbers compared per task; hypervolume is the run's archive.
METRICS: tuple[tuple[str, str], ...] = (
    ("em", "EM"), ("tool_calls", "#Tool"), ("needs_tool_calls", "calls on tool-needing"),
    ("hypervolume", "HV"))
REFERENCE_METHOD = "paretopo"

Results = dict[str, dict[str, dict[int, dict[str, Any]]]]  # task -> method -> seed -> report


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of its Student-t interval (NaN half-width for one value).

    >>> mean_ci([1.0, 2.0, 3.0])[0], round(mean_ci([1.0, 2.0, 3.0])[1], 3)
    (2.0, 2.484)
    """
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return math.nan, math.nan
    if len(values) == 1:
        return values[0], math.nan
    quantile = student_t.ppf(0.5 + level / 2, len(values) - 1)
    return fmean(values), float(quantile * stdev(values) / math.sqrt(len(values)))


def run_metrics(report: dict[str, Any], *, at: str = "end") -> dict[str, float]:
    """The compared numbers of one run's report at its start or end."""
    point = report[at]
    needed = report.get("by_difficulty", {}).get(NEEDS_TOOL, {})
    return {"em": point["em"], "tool_calls": point["tool_calls"],
            "needs_tool_calls": needed.get(f"{at}_calls", math.nan),
            "hypervolume": report["hypervolume"] if at == "end" else math.nan}


def _cell(values: Sequence[float]) -> str:
    mean, half = mean_ci(values)
    if math.isnan(mean):
        return "–"
    return f"{mean:.3f}" if math.isnan(half) else f"{mean:.3f} ± {half:.3f}"


def _table(tasks: list[str], methods: list[str], results: Results) -> str:
    header = ["Method"] + [f"{task} {label}" for task in tasks for _, label in METRICS]
    any_run = {task: next(iter(next(iter(results[task].values())).values())) for task in tasks}
    start = ["warm start (before RL)"]
    ideal = ["ideal point"]
    for task in tasks:
        starts = [run_metrics(r, at="start") for r in results[task][methods[0]].values()]
        start += [_cell([s[key] for s in starts]) for key, _ in METRICS]
        point = any_run[task]["ideal"]
        ideal += [f"{point['em']:.3f}", f"{point['tool_calls']:.3f}", "–", "–"]
    rows = [start]
    for method in methods:
        row = [method]
        for task in tasks:
            ends = [run_metrics(r) for r in results[task][method].values()]
            row += [_cell([e[key] for e in ends]) for key, _ in METRICS]
        rows.append(row)
    rows.append(ideal)
    return markdown_table(header, rows)


def differences(task: str, methods: list[str], results: Results) -> list[str]:
    """One line per (baseline, metric): ParetoPO minus the baseline, paired by seed."""
    if REFERENCE_METHOD not in methods:
        return []
    lines = []
    ours = results[task][REFERENCE_METHOD]
    for other in (m for m in methods if m != REFERENCE_METHOD):
        theirs = results[task][other]
        seeds = sorted(set(ours) & set(theirs))
        for key, label in METRICS:
            diffs = [run_metrics(ours[s])[key] - run_metrics(theirs[s])[key] for s in seeds]
            mean, half = mean_ci(diffs)
            if math.isnan(mean):
                continue
            if math.isnan(half):
                verdict = "one seed: not resolved"
                span = ""
            else:
                resolved = abs(mean) > half
                verdict = "resolved" if resolved else "not resolved"
                span = f" [{mean - half:+.3f}, {mean + half:+.3f}]"
            lines.append(f"- {task}: {REFERENCE_METHOD} − {other}, {label}: {mean:+.3f}{span} "
                         f"over {len(diffs)} seed(s): {verdict}")
    return lines


def write_bench(out: Path, tasks: list[str], methods: list[str], results: Results,
                seeds: list[int], budget: str) -> str:
    """Write table.md, results.json and fronts-<task>.png; returns the table's text."""
    table = _table(tasks, methods, results)
    lines = [line for task in tasks for line in differences(task, methods, results)]
    text = (f"Seeds {', '.join(map(str, seeds))}; budget {budget} of RL per run after the same "
            "warm start (per seed). End-of-run validation: EM, #Tool and calls on the prompts "
            "that need a tool, sampled (k completions per prompt); HV of each run's archive. "
            "Cells: mean ± half-width of the 95 % Student-t interval over seeds.\n\n"
            f"{table}\n\n"
            f"Differences (paired by seed; resolved = the 95 % interval excludes 0):\n\n"
            + ("\n".join(lines) if lines else "- (no paretopo run to compare with)") + "\n")
    (out / "table.md").write_text(text)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    for task in tasks:
        any_run = next(iter(next(iter(results[task].values())).values()))
        objectives = any_run["objectives"]
        fronts = {m: [[e[k] for k in objectives] for r in results[task][m].values()
                      for e in r["evaluations"]] for m in methods}
        plot_method_fronts(fronts, objectives, out / f"fronts-{task}.png",
                           title=f"validation outcomes by method on {task}, all seeds")
    return text
