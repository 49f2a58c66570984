"""Run a policy on a split with real tools, in-process, and measure EM and #Tool.

A simple agent loop for the testbed (the rollout service supersedes it in the live system):
batched `generate` until a stop tag, run the tool named by the tag (`</python>`: a fresh
Python subprocess; `</search>`: the lexical index), append the wrapped result, and go on until
`</answer>`, end of sequence, the call limit or the token budget. Tags are single tokens, so
stopping on them is exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import fmean

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from paretopo.answers import extract_answer
from paretopo.core.rewards import tool_efficiency
from paretopo.testbed.prompts import (
    PYTHON_CLOSE,
    PYTHON_OPEN,
    SEARCH_CLOSE,
    SEARCH_OPEN,
    STOP_TAGS,
    TaskName,
    render_prompt,
)
from paretopo.testbed.tasks import IdealPoint, Item, is_correct, search_index
from paretopo.testbed.tools import format_information, format_output, run_python


@dataclass(frozen=True)
class EvalSettings:
    """Generation limits of the evaluation loop (tokens are characters or tags)."""

    max_calls: int = 4  # a trajectory that calls more is cut and scored as it stands
    max_new_tokens: int = 160  # per generation turn
    max_completion_tokens: int = 600
    temperature: float = 0.0  # 0 = greedy
    batch_size: int = 64
    search_top_k: int = 1
    seed: int = 0


@dataclass
class Trajectory:
    item: Item
    completion: str = ""
    calls: int = 0
    done: bool = False
    answer: str | None = None
    correct: bool = False


@dataclass
class EvalReport:
    """EM, #Tool and mean r_tool (Eq. 4 with n = the item's known minimal calls)."""

    task: TaskName
    n: int
    em: float
    mean_calls: float
    mean_r_tool: float
    by_difficulty: dict[str, dict[str, float]] = field(default_factory=dict)
    trajectories: list[Trajectory] = field(default_factory=list, repr=False)

    def distance_to(self, ideal: IdealPoint) -> dict[str, float]:
        """Gap to the ideal on each objective: EM missing, and calls above the minimum."""
        return {"em_gap": ideal.em - self.em, "extra_calls": self.mean_calls - ideal.mean_calls}


class _Tools:
    def __init__(self, task: TaskName, settings: EvalSettings, seed: int) -> None:
        self._task = task
        self._k = settings.search_top_k
        self._index = search_index(seed) if task is TaskName.KBQA else None

    def respond(self, completion: str, stop: str) -> str:
        """The tool block for the call that `completion` just closed with `stop`."""
        opener = PYTHON_OPEN if stop == PYTHON_CLOSE else SEARCH_OPEN
        body = completion[: -len(stop)]
        request = body[body.rfind(opener) + len(opener) :] if opener in body else ""
        if stop == PYTHON_CLOSE:
            return format_output(run_python(request, timeout_s=5.0))
        if self._index is None:  # a search tag in a task without a search tool
            return format_information([])
        return format_information(self._index.search(request, self._k))


def _generate_turn(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    contexts: list[str],
    settings: EvalSettings,
) -> list[str]:
    """One generation turn for a batch of contexts; each result ends at its first stop tag."""
    enc = tokenizer(contexts, return_tensors="pt", padding=True, add_special_tokens=False)
    stop_ids = [tokenizer.convert_tokens_to_ids(t) for t in STOP_TAGS] + [tokenizer.eos_token_id]
    sample = settings.temperature > 0
    with torch.no_grad():
        out = model.generate(
            **enc,
            max_new_tokens=settings.max_new_tokens,
            do_sample=sample,
            temperature=settings.temperature if sample else None,
            top_p=None,
            top_k=None,
            eos_token_id=stop_ids,
            pad_token_id=tokenizer.pad_token_id,
        )
    texts = []
    for row in out[:, enc["input_ids"].shape[1] :].tolist():
        cut = next((i + 1 for i, t in enumerate(row) if t in stop_ids), len(row))
        texts.append(tokenizer.decode(row[:cut], skip_special_tokens=False))
    return texts


def _advance(traj: Trajectory, new_text: str, tools: _Tools, settings: EvalSettings) -> None:
    eos = "<eos>"
    traj.completion += new_text.removesuffix(eos)
    stop = next((t for t in (PYTHON_CLOSE, SEARCH_CLOSE) if new_text.endswith(t)), None)
    if stop is None or traj.calls >= settings.max_calls:
        traj.done = True  # answered, ended, ran out of tokens, or over the call limit
        return
    traj.calls += 1
    traj.completion += tools.respond(traj.completion, stop)
    if len(traj.completion) >= settings.max_completion_tokens:
        traj.done = True


def run_policy(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    task: TaskName | str,
    items: list[Item],
    settings: EvalSettings | None = None,
    *,
    world_seed: int = 0,
) -> list[Trajectory]:
    """Roll the policy out on every item (batched), with real tool execution."""
    settings = settings or EvalSettings()
    task = TaskName(task)
    tools = _Tools(task, settings, world_seed)
    torch.manual_seed(settings.seed)
    trajs = [Trajectory(item) for item in items]
    prompts = {id(t): render_prompt(task, t.item.question) for t in trajs}
    while active := [t for t in trajs if not t.done]:
        for start in range(0, len(active), settings.batch_size):
            batch = active[start : start + settings.batch_size]
            contexts = [prompts[id(t)] + t.completion for t in batch]
            for traj, text in zip(
                batch, _generate_turn(model, tokenizer, contexts, settings), strict=True
            ):
                _advance(traj, text, tools, settings)
    for traj in trajs:
        traj.answer = extract_answer(traj.completion)
        traj.correct = is_correct(task, traj.answer, traj.item)
    return trajs


def summarise(task: TaskName | str, trajs: list[Trajectory]) -> EvalReport:
    """EM, #Tool and r_tool over the trajectories, overall and by difficulty."""

    def stats(ts: list[Trajectory]) -> dict[str, float]:
        return {
            "n": float(len(ts)),
            "em": fmean(t.correct for t in ts),
            "calls": fmean(t.calls for t in ts),
            "r_tool": fmean(float(tool_efficiency(t.calls, t.item.min_calls)) for t in ts),
        }

    overall = stats(trajs)
    levels = sorted({str(t.item.difficulty) for t in trajs})
    return EvalReport(
        TaskName(task),
        len(trajs),
        overall["em"],
        overall["calls"],
        overall["r_tool"],
        {lv: stats([t for t in trajs if str(t.item.difficulty) == lv]) for lv in levels},
        trajs,
    )
