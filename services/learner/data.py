"""Prompts of a run: the training sequence (epoch by epoch, reshuffled per epoch) and the
fixed held-out validation prompts.

Prompts come from a `paretopo.tasks.Task` found by name (the testbed's `calc`/`kbqa` or one
of the paper's datasets): the task renders each question and grades each answer, so the
learner treats every task alike.

Training prompt number `seq` (0, 1, 2, ... over the whole run) is a pure function of the
seed and `seq`, so the data position is one integer and a resumed run sees the same prompts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from paretopo.tasks import Task, get_task


@dataclass(frozen=True)
class Prompt:
    """One prompt as the learner enqueues it, with the item and task its grader needs."""

    id: str
    text: str
    item: Any  # a testbed item, or a `paretopo.datasets.Record`
    task: Task


def _split(task: Task, eval_task: Task | None, *, train_items: int, eval_items: int,
           seed: int) -> tuple[list[Any], list[Any]]:
    """Training and validation items: the task's own splits when it has them, else the
    validation task's first items, else the last `eval_items` of the task's one split (held
    out of training)."""
    if eval_task is not None:
        (train_split,), (eval_split,) = task.splits[:1], eval_task.splits[-1:]
        return (task.items(train_split, train_items, seed=seed),
                eval_task.items(eval_split, eval_items, seed=seed))
    if "train" in task.splits and "validation" in task.splits:
        return (task.items("train", train_items, seed=seed),
                task.items("validation", eval_items, seed=seed))
    records = task.items(task.splits[0], train_items + eval_items, seed=seed)
    cut = max(len(records) - eval_items, 0)
    return records[:cut], records[cut:]


class PromptSource:
    """Training prompts in a seeded order, and validation prompts, of one task."""

    def __init__(self, task: Task | str, *, train_items: int, eval_items: int, seed: int,
                 tokenizer: Any = None, eval_task: Task | None = None) -> None:
        self.task = get_task(task) if isinstance(task, str) else task
        self.seed = seed
        train, validation = _split(self.task, eval_task, train_items=train_items,
                                   eval_items=eval_items, seed=seed)

        def prompts(items: list[Any], task: Task) -> list[Prompt]:
            return [Prompt(item.id, task.prompt(item.question, tokenizer), item, task)
                    for item in items]

        self.train = prompts(train, self.task)
        self.validation = prompts(validation, eval_task or self.task)
        self._tasks = {self.task, eval_task or self.task}
        if not self.train:
            raise ValueError(f"task {self.task.name!r} has no training items")
        if not self.validation:
            raise ValueError(f"task {self.task.name!r} has no validation items")
        self._by_id = {p.id: p for p in (*self.train, *self.validation)}
        self._orders: dict[int, list[int]] = {}

    def __len__(self) -> int:
        return len(self.train)

    def epoch_of(self, seq: int) -> int:
        return seq // len(self.train)

    def at(self, seq: int) -> Prompt:
        """Training prompt number `seq` of the run (epoch `seq // N`, shuffled per epoch)."""
        if seq < 0:
            raise ValueError(f"seq must be >= 0, got {seq}")
        epoch, index = divmod(seq, len(self.train))
        if epoch not in self._orders:
            order = list(range(len(self.train)))
            random.Random(f"learner:{self.task.name}:{self.seed}:{epoch}").shuffle(order)
            self._orders = {epoch: order}  # one epoch at a time is all the loop needs
        return self.train[self._orders[epoch][index]]

    def get(self, prompt_id: str) -> Prompt | None:
        """The training or validation prompt with this id, None when unknown."""
        return self._by_id.get(prompt_id)

    def grade(self, prompt: Prompt, answer: str | None) -> bool:
        """r_acc of `answer` to `prompt`: its task's grader."""
        return prompt.task.grade(prompt.item, answer)

    def close(self) -> None:
        """Release grading resources."""
        for task in self._tasks:
            task.close()


def build_prompt_source(config: Any) -> PromptSource:
    """The prompt source a `RunConfig` names: its dataset when set, else its testbed task."""
    data = config.data
    if data.dataset is None:
        return PromptSource(data.task, train_items=data.train_items,
                            eval_items=config.eval.prompts, seed=config.seed)
    from paretopo.hf_policy import load_tokenizer

    def task(name: str) -> Task:
        return get_task(name, template=data.tool_format, data_dir=data.data_dir)

    return PromptSource(task(data.dataset), train_items=data.train_items,
                        eval_items=config.eval.prompts, seed=config.seed,
                        tokenizer=load_tokenizer(config.model_path),
                        eval_task=task(data.eval_dataset) if data.eval_dataset else None)
