"""One entry point per task for the code that does not care which task it runs: items of a
split, the grader, the tools, and the known ideal point.

Why the ideal is known: every item is generated together with the minimal number of tool
calls an agent needs (`min_calls`, by construction: 0 for what is answerable from the
warm-start knowledge, else one call per fact that only a tool can give). An agent that answers
every item right with exactly `min_calls` calls is ideal: EM = 1 and the least mean #Tool
that EM = 1 allows, i.e. the mean of `min_calls` over the split. Nothing can dominate it.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import fmean

from paretopo.testbed import calc, kbqa
from paretopo.testbed.calc import CalcItem
from paretopo.testbed.kbqa import KbqaItem
from paretopo.testbed.prompts import TaskName
from paretopo.testbed.splits import Split
from paretopo.testbed.tools import LexicalIndex

Item = CalcItem | KbqaItem

#: Items per split used for evaluation unless asked otherwise (kbqa: the whole split).
DEFAULT_EVAL_ITEMS = 150


def load_items(
    task: TaskName | str, split: Split | str, n: int | None = None, *, seed: int = 0
) -> list[Item]:
    """The first `n` items of a split (`calc`: `DEFAULT_EVAL_ITEMS` when `n` is None)."""
    if TaskName(task) is TaskName.CALC:
        return list(calc.generate(split, n or DEFAULT_EVAL_ITEMS, seed=seed))
    return list(kbqa.generate(split, n, seed=seed))


def items_version(task: TaskName | str) -> int:
    """The generation of `task`'s items: a checkpoint trained on another one is stale."""
    return calc.ITEMS_VERSION if TaskName(task) is TaskName.CALC else kbqa.ITEMS_VERSION


def search_index(seed: int = 0) -> LexicalIndex:
    """The lexical index over the `kbqa` corpus of world `seed`."""
    return LexicalIndex(kbqa.build_world(seed).passages())


@dataclass(frozen=True)
class IdealPoint:
    """The ideal (EM, #Tool) of a task's split; every report states its distance to it."""

    task: TaskName
    split: Split
    n_items: int
    em: float
    mean_calls: float
    calls_by_difficulty: dict[str, float]


def ideal_point(
    task: TaskName | str, split: Split | str, n: int | None = None, *, seed: int = 0
) -> IdealPoint:
    """EM = 1 with the minimal mean number of calls, over the same items `evaluate` uses."""
    items = load_items(task, split, n, seed=seed)
    by_level: dict[str, list[int]] = {}
    for item in items:
        by_level.setdefault(str(item.difficulty), []).append(item.min_calls)
    return IdealPoint(
        TaskName(task),
        Split(split),
        len(items),
        1.0,
        fmean(item.min_calls for item in items),
        {level: fmean(calls) for level, calls in sorted(by_level.items())},
    )
