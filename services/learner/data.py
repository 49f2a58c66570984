"""Prompts of a run: the training sequence (epoch by epoch, reshuffled per epoch) and the
fixed held-out validation prompts.

Training prompt number `seq` (0, 1, 2, ... over the whole run) is a pure function of the
seed and `seq`, so the data position is one integer and a resumed run sees the same prompts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from paretopo.testbed.prompts import render_prompt
from paretopo.testbed.splits import Split
from paretopo.testbed.tasks import Item, load_items


@dataclass(frozen=True)
class Prompt:
    """One prompt as the learner enqueues it, with the item its grader needs."""

    id: str
    text: str
    item: Item


def _prompts(task: str, items: list[Item]) -> list[Prompt]:
    return [Prompt(item.id, render_prompt(task, item.question), item) for item in items]


class PromptSource:
    """Training prompts in a seeded order, and validation prompts, of one testbed task."""

    def __init__(self, task: str, *, train_items: int, eval_items: int, seed: int) -> None:
        self.task = task
        self.seed = seed
        self.train = _prompts(task, load_items(task, Split.TRAIN, train_items, seed=seed))
        self.validation = _prompts(task, load_items(task, Split.VALIDATION, eval_items, seed=seed))
        if not self.train:
            raise ValueError(f"task {task!r} has no training items")
        if not self.validation:
            raise ValueError(f"task {task!r} has no validation items")
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
            random.Random(f"learner:{self.task}:{self.seed}:{epoch}").shuffle(order)
            self._orders = {epoch: order}  # one epoch at a time is all the loop needs
        return self.train[self._orders[epoch][index]]

    def get(self, prompt_id: str) -> Prompt | None:
        """The training or validation prompt with this id, None when unknown."""
        return self._by_id.get(prompt_id)
