"""A task, found by name: its items, their prompts, the grader, the tool format, the ideal.

The learner and the evaluation runner work against `Task` only, so the testbed's `calc` and
`kbqa` and each of the paper's benchmarks (MATH500, NQ, a verl parquet file, ...) go through
the same code. `get_task` is the one place that maps a name to a task.

>>> task = get_task("calc")
>>> item = task.items("validation", 1)[0]
>>> task.grade(item, item.answer)
True
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Protocol

from paretopo.agent_formats import ToolFormat, tool_format
from paretopo.datasets.records import DatasetError, Record, TaskKind
from paretopo.testbed.tasks import IdealPoint
from paretopo.testbed.tools import SEARCH_TOP_K

TESTBED_TASKS = ("calc", "kbqa")


class TaskItem(Protocol):
    """What every task's items carry (testbed items and benchmark `Record`s alike)."""

    @property
    def id(self) -> str: ...

    @property
    def question(self) -> str: ...


class Task(ABC):
    """One task: where its items come from, how they are asked, and how answers are graded."""

    #: Name of the task (a testbed task, a benchmark name, or a benchmark file path).
    name: str
    #: The tool-call syntax the agent loop runs with on this task.
    tool_format: ToolFormat
    #: Splits `items` accepts; a benchmark file is one split, "test".
    splits: tuple[str, ...]
    #: The split an evaluation reads by default.
    eval_split: str
    #: The tool services the task's agent calls ("python", "search").
    tools: frozenset[str]
    #: Name of the prompt format, for reports.
    template_name: str
    #: Passages a search call returns on this task; None leaves it to the rollout worker.
    search_top_k: int | None = None

    @abstractmethod
    def items(self, split: str, limit: int | None = None, *, seed: int = 0) -> list[Any]:
        """The first `limit` items of `split` (all when None)."""

    @abstractmethod
    def prompt(self, question: str, tokenizer: Any = None) -> str:
        """The policy's prompt text for `question` (a chat template needs the tokenizer)."""

    @abstractmethod
    def grade(self, item: Any, answer: str | None) -> bool:
        """r_acc of the extracted `answer` to `item`."""

    @abstractmethod
    def golds(self, item: Any) -> list[str]:
        """The accepted answers of `item`, as reports show them."""

    def ideal(self, split: str, limit: int | None = None, *, seed: int = 0) -> IdealPoint | None:
        """The task's ideal (EM, #Tool) point where it is known exactly; None otherwise."""
        return None

    def difficulty(self, item: Any) -> str | None:
        """The item's difficulty level where the task defines one (reports group by it)."""
        return None

    def min_calls(self, item: Any) -> int | None:
        """The fewest tool calls that answer `item`, where the task knows it."""
        return None

    def close(self) -> None:  # noqa: B027  (most tasks hold nothing to release)
        """Release grading resources."""

    def _check_split(self, split: str) -> str:
        if split not in self.splits:
            raise DatasetError(f"task {self.name!r} has no split {split!r}; "
                               f"it has {', '.join(self.splits)}")
        return split


class TestbedTask(Task):
    """The embedded CPU testbed (`calc` or `kbqa`): generated items with a known ideal."""

    splits = ("train", "validation", "test")
    eval_split = "validation"

    def __init__(self, name: str) -> None:
        if name not in TESTBED_TASKS:
            raise DatasetError(f"unknown testbed task {name!r}; known: {', '.join(TESTBED_TASKS)}")
        self.name = name
        self.tool_format = tool_format("testbed")
        self.tools = frozenset({"python" if name == "calc" else "search"})
        self.template_name = f"testbed-{name}"
        self.search_top_k = SEARCH_TOP_K
        self.kind = TaskKind.MATH if name == "calc" else TaskKind.QA
        self._grader: Any = None  # made on first use: most testbed tasks never grade

    def _bounded_grader(self) -> Any:
        # A model's answer such as "77162211771!" keeps sympy busy for good, and outside the
        # main thread math-verify's own time limit never fires: math is compared in a child
        # process (started on the first math comparison; QA never starts it).
        from paretopo.graders import Grader

        if self._grader is None:
            self._grader = Grader()
        return self._grader

    def items(self, split: str, limit: int | None = None, *, seed: int = 0) -> list[Any]:
        from paretopo.testbed.tasks import load_items

        return load_items(self.name, self._check_split(split), limit, seed=seed)

    def prompt(self, question: str, tokenizer: Any = None) -> str:
        from paretopo.testbed.prompts import render_prompt

        return render_prompt(self.name, question)  # the raw prompt the tiny policy learned

    def grade(self, item: Any, answer: str | None) -> bool:
        """The testbed's r_acc through `paretopo.graders.Grader`, as the benchmarks grade:
        calc by math equivalence under a hard time limit from any thread, kbqa by normalised
        exact match."""
        return self._bounded_grader().check(answer, self.golds(item), self.kind).correct

    def close(self) -> None:
        if self._grader is not None:
            self._grader.close()
            self._grader = None

    def golds(self, item: Any) -> list[str]:
        return list(getattr(item, "golds", None) or [item.answer])

    def ideal(self, split: str, limit: int | None = None, *, seed: int = 0) -> IdealPoint | None:
        from paretopo.testbed.tasks import ideal_point

        return ideal_point(self.name, self._check_split(split), limit, seed=seed)

    def difficulty(self, item: Any) -> str | None:
        return str(item.difficulty)

    def min_calls(self, item: Any) -> int | None:
        return int(item.min_calls)


class BenchmarkTask(Task):
    """One of the paper's benchmarks (a name in `paretopo.datasets.BENCHMARKS` or a file),
    asked through a `paretopo.templates` chat template, graded by `paretopo.graders`."""

    splits = ("test",)
    eval_split = "test"

    def __init__(self, name: str, *, template: str | None = None,
                 data_dir: Path | None = None, grade_timeout_s: float | None = None) -> None:
        from paretopo.graders import DEFAULT_TIMEOUT_S, Grader
        from paretopo.templates import prompt_template

        self.name = name
        self.data_dir = data_dir
        self.template = prompt_template(template or self._default_template())
        self.tool_format = self.template.tool_format
        self.tools = frozenset(str(call.tool) for call in self.tool_format.calls)
        self.template_name = self.template.name
        # math is compared in a child process, with a time limit per comparison
        self._grader = Grader(timeout_s=grade_timeout_s or DEFAULT_TIMEOUT_S)

    def _default_template(self) -> str:
        """The benchmark's own template; for a file, by the kind of its first record."""
        from paretopo.datasets.registry import BENCHMARKS, load_benchmark

        known = BENCHMARKS.get(self.name)
        if known is not None:
            return known.tool_format
        first = load_benchmark(self.name, data_dir=self.data_dir, limit=1)
        return "search_r1" if first and first[0].kind is TaskKind.QA else "torl"

    def items(self, split: str, limit: int | None = None, *, seed: int = 0) -> list[Record]:
        from paretopo.datasets.registry import load_benchmark

        self._check_split(split)
        return load_benchmark(self.name, data_dir=self.data_dir, limit=limit)

    def prompt(self, question: str, tokenizer: Any = None) -> str:
        from paretopo.templates import render_prompt

        if tokenizer is None:
            raise ValueError(f"task {self.name!r} renders prompts with the policy's chat "
                             "template: pass its tokenizer")
        return render_prompt(self.template, question, tokenizer)

    def grade(self, item: Any, answer: str | None) -> bool:
        return self._grader.check(answer, item.golds, item.kind).correct

    def golds(self, item: Any) -> list[str]:
        return [str(gold) for gold in item.golds]

    def close(self) -> None:
        self._grader.close()


def get_task(name: str, *, template: str | None = None, data_dir: Path | None = None,
             grade_timeout_s: float | None = None) -> Task:
    """The task called `name`: a testbed task (`calc`, `kbqa`, or `testbed-calc`/`-kbqa`),
    a named benchmark, or a benchmark file (.jsonl or verl .parquet).

    `template` names the prompt template of a benchmark (default: the benchmark's own);
    `grade_timeout_s` bounds one math comparison.
    """
    from paretopo.datasets.registry import BENCHMARKS, benchmark
    from paretopo.datasets.testbed import TESTBED_BENCHMARKS

    if name in TESTBED_TASKS:
        return TestbedTask(name)
    if name in TESTBED_BENCHMARKS:
        return TestbedTask(TESTBED_BENCHMARKS[name])
    if name not in BENCHMARKS and not Path(name).is_file():
        benchmark(name)  # raises a DatasetError listing the known names
    return BenchmarkTask(name, template=template, data_dir=data_dir,
                         grade_timeout_s=grade_timeout_s)
