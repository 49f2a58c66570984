"""Prompts of a run: the training sequence (epoch by epoch, reshuffled per epoch) and the
fixed held-out validation prompts.

Two sources: a testbed task (`PromptSource`, the testbed's prompt and grader) or one of the
paper's datasets (`DatasetPromptSource`: `paretopo.datasets.load_benchmark` records, the
`paretopo.templates` prompt through the policy's chat template, `paretopo.graders` for r_acc).

Training prompt number `seq` (0, 1, 2, ... over the whole run) is a pure function of the
seed and `seq`, so the data position is one integer and a resumed run sees the same prompts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paretopo.testbed.prompts import render_prompt
from paretopo.testbed.splits import Split
from paretopo.testbed.tasks import Item, is_correct, load_items


@dataclass(frozen=True)
class Prompt:
    """One prompt as the learner enqueues it, with the item its grader needs."""

    id: str
    text: str
    item: Any  # a testbed `Item`, or a `paretopo.datasets.Record`


def _prompts(task: str, items: list[Item]) -> list[Prompt]:
    return [Prompt(item.id, render_prompt(task, item.question), item) for item in items]


class PromptSource:
    """Training prompts in a seeded order, and validation prompts, of one testbed task."""

    def __init__(self, task: str, *, train_items: int, eval_items: int, seed: int) -> None:
        self.task = task
        self.seed = seed
        self.train = _prompts(task, load_items(task, Split.TRAIN, train_items, seed=seed))
        self.validation = _prompts(task, load_items(task, Split.VALIDATION, eval_items, seed=seed))
        self._index()

    def _index(self) -> None:
        task = self.task
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

    def grade(self, prompt: Prompt, answer: str | None) -> bool:
        """r_acc of `answer` to `prompt`: the testbed task's grader."""
        return is_correct(self.task, answer, prompt.item)

    def close(self) -> None:
        """Release grading resources (none for the testbed)."""


class DatasetPromptSource(PromptSource):
    """Training prompts from a paper dataset (name or file), graded by `paretopo.graders`.

    Validation prompts are the first `eval_items` of `eval_dataset`, or, without one, the last
    `eval_items` records of the training file, which are then held out of training.
    """

    def __init__(self, dataset: str, *, template: str, model_path: Path, train_items: int,
                 eval_items: int, seed: int, eval_dataset: str | None = None,
                 data_dir: Path | None = None) -> None:
        from paretopo.datasets import load_benchmark
        from paretopo.graders import Grader
        from paretopo.templates import render_prompt
        from paretopo.testbed.tokenizer import load_tokenizer

        self.task = dataset  # names the data in the order seed and in errors
        self.seed = seed
        tokenizer = load_tokenizer(model_path)

        def prompts(records: list) -> list[Prompt]:
            return [Prompt(r.id, render_prompt(template, r.question, tokenizer), r)
                    for r in records]

        if eval_dataset is None:
            records = load_benchmark(dataset, data_dir=data_dir, limit=train_items + eval_items)
            cut = max(len(records) - eval_items, 0)
            self.train, self.validation = prompts(records[:cut]), prompts(records[cut:])
        else:
            self.train = prompts(load_benchmark(dataset, data_dir=data_dir, limit=train_items))
            self.validation = prompts(load_benchmark(eval_dataset, data_dir=data_dir,
                                                     limit=eval_items))
        self._index()
        self._grader = Grader()  # math in a child process, with a time limit per comparison

    def grade(self, prompt: Prompt, answer: str | None) -> bool:
        """r_acc: math-verify equivalence or SQuAD exact match, by the record's kind."""
        return self._grader.check(answer, prompt.item.golds, prompt.item.kind).correct

    def close(self) -> None:
        self._grader.close()


def build_prompt_source(config: Any) -> PromptSource:
    """The prompt source a `RunConfig` names: its dataset when set, else its testbed task."""
    data = config.data
    if data.dataset is None:
        return PromptSource(data.task, train_items=data.train_items,
                            eval_items=config.eval.prompts, seed=config.seed)
    return DatasetPromptSource(data.dataset, template=data.tool_format,
                               model_path=config.model_path, train_items=data.train_items,
                               eval_items=config.eval.prompts, seed=config.seed,
                               eval_dataset=data.eval_dataset, data_dir=data.data_dir)
