"""Pictures and tables of a run's outcomes: the front over checkpoints, every method's front,
and the Markdown table shaped like the paper's Tables 1-3.

Outcome vectors y_t are in objective space (every objective maximised, e.g. EM and mean
r_tool); fronts are the non-dominated subsets from `paretopo.core.pareto`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI

import matplotlib.pyplot as plt
import numpy as np

from paretopo.core.pareto import nondominated_mask


@dataclass(frozen=True)
class Checkpoint:
    """One validation outcome of a run: the step and y_t."""

    step: int
    y: tuple[float, ...]


def _pairs(m: int) -> list[tuple[int, int]]:
    return [(0, 1)] if m == 2 else list(combinations(range(m), 2))


def _staircase(ax: plt.Axes, front: np.ndarray, i: int, j: int, **style: object) -> None:
    """Connect a 2-D front as the boundary of the region it dominates."""
    pts = front[np.argsort(-front[:, i])]
    xs, ys = [], []
    for x, y in pts[:, [i, j]]:
        if xs:
            xs.append(x)
            ys.append(ys[-1])
        xs.append(x)
        ys.append(y)
    ax.plot(xs, ys, **style)


def plot_front_over_checkpoints(
    checkpoints: Sequence[Checkpoint], objectives: Sequence[str], out: Path,
    *, ideal: Sequence[float] | None = None, title: str = "",
) -> Path:
    """Every validation outcome coloured by step, the final front drawn over them."""
    if not checkpoints:
        raise ValueError("no validation outcomes to plot")
    ys = np.array([c.y for c in checkpoints], dtype=float)
    steps = np.array([c.step for c in checkpoints])
    m = ys.shape[1]
    if m != len(objectives):
        raise ValueError(f"outcomes have {m} objectives, names given for {len(objectives)}")
    pairs = _pairs(m)
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.2 * len(pairs), 4.4), squeeze=False)
    front = ys[nondominated_mask(ys)]
    for ax, (i, j) in zip(axes[0], pairs, strict=True):
        sc = ax.scatter(ys[:, i], ys[:, j], c=steps, cmap="viridis", s=36, zorder=3)
        _staircase(ax, front, i, j, color="crimson", lw=1.5, label="front", zorder=2)
        if ideal is not None:
            ax.scatter([ideal[i]], [ideal[j]], marker="*", s=220, color="gold",
                       edgecolor="black", label="ideal", zorder=4)
        _axes(ax, ys, objectives, i, j)
        ax.legend(loc="upper left", fontsize=8)
    fig.colorbar(sc, ax=axes[0].tolist(), label="step")
    fig.suptitle(title or "validation outcomes over checkpoints")
    return _save(fig, out)


def plot_validation_trajectory(
    evaluations: Sequence[Mapping[str, float]], out: Path, *,
    ideal: Mapping[str, float] | None = None, title: str = "",
) -> Path:
    """The policy's path in the (#Tool, EM) plane, one point per validation in step order,
    with the ideal point: learning the trade-off is a path up and toward the ideal's calls."""
    if not evaluations:
        raise ValueError("no validations to plot")
    calls = np.array([e["tool_calls"] for e in evaluations], dtype=float)
    em = np.array([e["em"] for e in evaluations], dtype=float)
    steps = [int(e["step"]) for e in evaluations]
    fig, ax = plt.subplots(figsize=(5.6, 4.6))
    ax.plot(calls, em, color="grey", lw=1, zorder=1)
    sc = ax.scatter(calls, em, c=steps, cmap="viridis", s=44, zorder=3)
    for (x, y, step) in ((calls[0], em[0], steps[0]), (calls[-1], em[-1], steps[-1])):
        ax.annotate(f"step {step}", (x, y), textcoords="offset points", xytext=(6, -12),
                    fontsize=8)
    if ideal is not None:
        ax.scatter([ideal["tool_calls"]], [ideal["em"]], marker="*", s=240, color="gold",
                   edgecolor="black", label="ideal", zorder=4)
        ax.legend(loc="lower right", fontsize=8)
    right = max(float(calls.max()), ideal["tool_calls"] if ideal else 0.0, 1.0)
    ax.set_xlim(0.0, 1.08 * right)
    ax.set_ylim(0.0, 1.04)
    ax.set_xlabel("mean tool calls per answer (#Tool, lower is better)")
    ax.set_ylabel("sampled validation EM")
    ax.grid(alpha=0.3)
    fig.colorbar(sc, ax=ax, label="step")
    ax.set_title(title or "validation trajectory")
    return _save(fig, out)


def plot_method_fronts(
    outcomes: Mapping[str, Sequence[Sequence[float]]], objectives: Sequence[str], out: Path,
    *, title: str = "",
) -> Path:
    """Each method's non-dominated validation outcomes, one colour per method."""
    if not outcomes:
        raise ValueError("no methods to plot")
    m = len(objectives)
    pairs = _pairs(m)
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.2 * len(pairs), 4.4), squeeze=False)
    colours = plt.get_cmap("tab10")
    for k, (method, ys_list) in enumerate(outcomes.items()):
        ys = np.asarray(ys_list, dtype=float).reshape(-1, m)
        if len(ys) == 0:
            continue
        front = ys[nondominated_mask(ys)]
        for ax, (i, j) in zip(axes[0], pairs, strict=True):
            ax.scatter(ys[:, i], ys[:, j], color=colours(k), alpha=0.25, s=14)
            ax.scatter(front[:, i], front[:, j], color=colours(k), s=40, label=method)
            _staircase(ax, front, i, j, color=colours(k), lw=1.2)
    every = np.concatenate([np.asarray(v, dtype=float).reshape(-1, m) for v in outcomes.values()])
    for ax, (i, j) in zip(axes[0], pairs, strict=True):
        _axes(ax, every, objectives, i, j)
    axes[0][0].legend(loc="upper left", fontsize=8)
    fig.suptitle(title or "Pareto fronts by method")
    return _save(fig, out)


def _axes(ax: plt.Axes, ys: np.ndarray, objectives: Sequence[str], i: int, j: int) -> None:
    """Labels, grid, and limits that always show [0, 1] (every objective here is a rate)."""
    for k, setter in ((i, ax.set_xlim), (j, ax.set_ylim)):
        lo, hi = min(0.0, float(ys[:, k].min())), max(1.0, float(ys[:, k].max()))
        pad = 0.04 * (hi - lo)
        setter(lo - pad, hi + pad)
    ax.set_xlabel(objectives[i])
    ax.set_ylabel(objectives[j])
    ax.grid(alpha=0.3)


def _save(fig: plt.Figure, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub Markdown table; floats with 3 decimals."""

    def cell(v: object) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
