"""The testbed tasks as benchmarks (`testbed-calc`, `testbed-kbqa`), so `paretopo eval` runs
the tiny CPU policy through the same path as the paper's benchmarks.

Records come from the task generators (`paretopo.testbed.tasks.load_items`, validation split,
world seed 0 unless asked otherwise); `calc` is graded as math, `kbqa` as QA, as
`paretopo.tasks.TestbedTask.grade` grades them in training.
"""

from __future__ import annotations

from paretopo.datasets.records import DatasetError, Record, TaskKind

#: Benchmark name -> testbed task.
TESTBED_BENCHMARKS: dict[str, str] = {"testbed-calc": "calc", "testbed-kbqa": "kbqa"}
_KINDS = {"calc": TaskKind.MATH, "kbqa": TaskKind.QA}


def testbed_task(name: str) -> str:
    """The testbed task behind benchmark `name` (``testbed-calc`` -> ``calc``)."""
    try:
        return TESTBED_BENCHMARKS[name]
    except KeyError:
        raise DatasetError(
            f"unknown testbed benchmark {name!r}; known: {', '.join(TESTBED_BENCHMARKS)}"
        ) from None


def load_testbed(
    name: str, *, split: str = "validation", limit: int | None = None, seed: int = 0
) -> list[Record]:
    """Records of a testbed benchmark: the first `limit` items of `split` of world `seed`."""
    from paretopo.testbed.tasks import load_items

    task = testbed_task(name)
    items = load_items(task, split, limit, seed=seed)
    return [
        Record(id=f"{name}/{item.id}", question=item.question,
               golds=list(getattr(item, "golds", None) or [item.answer]), kind=_KINDS[task],
               source=name)
        for item in items[:limit]
    ]
