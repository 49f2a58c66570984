"""Evaluate a checkpoint on a benchmark with the rollout service's own agent loop.

Prompts and verdicts come from the benchmark's `paretopo.tasks.Task` (a paper benchmark's
chat template and `paretopo.graders`, or a testbed task's own prompt and grader), trajectories
from `services.rollout.agent.AgentLoop` (in-process, the PyTorch or vLLM engine, real tool
services over gRPC). Reports the paper's two metrics, EM (share of correct trajectories) and
#Tool (mean tool calls per trajectory), plus mean r_tool (Eq. 4) with n*(q) taken as the
fewest calls among the question's correct samples in this evaluation (unknown: r_tool = 0).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from paretopo.core.rewards import tool_efficiency
from paretopo.jobs import SamplingParams, TrajectoryRecord, stable_seed
from paretopo.process import ManagedProcess
from paretopo.tasks import Task


class EvalSettings(BaseModel):
    """What `evaluate_records` runs with (the tool targets are host:port of gRPC servers)."""

    model_path: str = Field(description="Hugging Face causal LM checkpoint directory.")
    engine: str = Field("torch", description="torch or vllm.")
    device: str = Field("cpu", description="cpu or cuda (torch engine).")
    threads: int | None = Field(None, ge=1, description="torch intra-op threads.")
    executor: str | None = Field(None, description="Python executor gRPC target.")
    search: str | None = Field(None, description="Search service gRPC target.")
    search_top_k: int = Field(3, ge=1, description="Passages per search call, unless the "
                              "task sets its own (the testbed's policy reads one).")
    tool_timeout_s: float = Field(30.0, gt=0, description="Deadline of one tool call.")
    samples: int = Field(1, ge=1, description="Trajectories per question (G).")
    concurrency: int = Field(4, ge=1, description="Questions rolled out at once.")
    sampling: SamplingParams = Field(default_factory=SamplingParams)


class ItemResult(BaseModel):
    """One question's trajectories, as saved in the report."""

    id: str
    golds: list[str]
    answers: list[str | None] = Field(default_factory=list)
    correct: list[bool] = Field(default_factory=list)
    tool_calls: list[int] = Field(default_factory=list)
    r_tool: list[float] = Field(default_factory=list)
    finish_reasons: list[str] = Field(default_factory=list)
    difficulty: str | None = None  # where the task defines levels
    min_calls: int | None = None  # the fewest calls that answer it, where the task knows
    error: str | None = None  # the question could not be rolled out (e.g. prompt too long)


class EvalReport(BaseModel):
    """The saved result of one evaluation."""

    benchmark: str
    model: str
    template: str
    n_questions: int
    samples_per_question: int
    em: float = Field(description="Share of correct trajectories (paper: EM).")
    mean_tool_calls: float = Field(description="Mean tool calls per trajectory (paper: #Tool).")
    mean_r_tool: float = Field(description="Mean r_tool (Eq. 4), n* from this evaluation.")
    finish_reasons: dict[str, int]
    failed_questions: int
    by_difficulty: dict[str, dict[str, float | None]] = Field(
        default_factory=dict, description="n, em, tool_calls, no_tool_share, em_no_tool and "
        "em_with_tool per difficulty level (the last two None where no sample was so).")
    needs_tool: dict[str, float | None] | None = Field(
        None, description="The same over the questions that need a tool call.")
    wall_s: float
    items: list[ItemResult]


class EvalRun(BaseModel):
    """One `paretopo eval` call: a checkpoint on one or more benchmarks."""

    model: str
    engine: str
    samples_per_question: int
    reports: list[EvalReport]


def markdown_table(reports: Sequence[EvalReport]) -> str:
    """The paper's metrics per benchmark as a Markdown table (an ``Avg.`` row when several)."""
    lines = ["| Benchmark | Questions | G | EM (%) | #Tool | mean r_tool | Failed |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in reports:
        lines.append(f"| {r.benchmark} | {r.n_questions} | {r.samples_per_question} | "
                     f"{100 * r.em:.1f} | {r.mean_tool_calls:.2f} | {r.mean_r_tool:.3f} | "
                     f"{r.failed_questions} |")
    if len(reports) > 1:  # the paper's "Avg." column: unweighted mean over benchmarks
        k = len(reports)
        lines.append(f"| Avg. | {sum(r.n_questions for r in reports)} | | "
                     f"{100 * sum(r.em for r in reports) / k:.1f} | "
                     f"{sum(r.mean_tool_calls for r in reports) / k:.2f} | "
                     f"{sum(r.mean_r_tool for r in reports) / k:.3f} | "
                     f"{sum(r.failed_questions for r in reports)} |")
    return "\n".join(lines) + "\n"


def _group_stats(items: Sequence[ItemResult], samples: int) -> dict[str, float | None]:
    """n, EM and #Tool over `items`; a failed question counts as `samples` wrong, no calls.

    Also the trade-off behind them: the share of samples that called no tool, and EM among
    samples with and without a call (None where there is none), so one can see whether an item
    answered from memory would have been right without the tool.
    """
    total = len(items) * samples or 1
    pairs = [(ok, calls) for i in items for ok, calls in zip(i.correct, i.tool_calls,
                                                             strict=True)]
    no_tool = [ok for ok, calls in pairs if calls == 0]
    with_tool = [ok for ok, calls in pairs if calls > 0]
    return {"n": float(len(items)), "em": sum(sum(i.correct) for i in items) / total,
            "tool_calls": sum(sum(i.tool_calls) for i in items) / total,
            "no_tool_share": len(no_tool) / total,
            "em_no_tool": sum(no_tool) / len(no_tool) if no_tool else None,
            "em_with_tool": sum(with_tool) / len(with_tool) if with_tool else None}


def _score(task: Task, item: Any, trajs: Sequence[TrajectoryRecord]) -> ItemResult:
    correct = [task.grade(item, t.answer) for t in trajs]
    calls = [t.n_tool_calls for t in trajs]
    solved = [c for c, ok in zip(calls, correct, strict=True) if ok]
    n_star = min(solved) if solved else -1
    return ItemResult(
        id=item.id, golds=task.golds(item), answers=[t.answer for t in trajs], correct=correct,
        tool_calls=calls,
        r_tool=[float(tool_efficiency(c, n_star)) if ok else 0.0
                for c, ok in zip(calls, correct, strict=True)],
        finish_reasons=[t.finish_reason for t in trajs],
        difficulty=task.difficulty(item), min_calls=task.min_calls(item),
    )


def summarise(benchmark: str, settings: EvalSettings, template: str, items: list[ItemResult],
              wall_s: float) -> EvalReport:
    """Aggregate per-question results; failed questions count as wrong with no tool calls."""
    n = settings.samples
    total = len(items) * n or 1
    levels = sorted({i.difficulty for i in items if i.difficulty is not None})
    needing = [i for i in items if i.min_calls]
    return EvalReport(
        benchmark=benchmark, model=settings.model_path, template=template,
        n_questions=len(items), samples_per_question=n,
        em=sum(sum(i.correct) for i in items) / total,
        mean_tool_calls=sum(sum(i.tool_calls) for i in items) / total,
        mean_r_tool=sum(sum(i.r_tool) for i in items) / total,
        finish_reasons=dict(Counter(r for i in items for r in i.finish_reasons)),
        failed_questions=sum(i.error is not None for i in items),
        by_difficulty={lv: _group_stats([i for i in items if i.difficulty == lv], n)
                       for lv in levels},
        needs_tool=_group_stats(needing, n) if needing else None,
        wall_s=wall_s, items=items,
    )


def _item_sampling(settings: EvalSettings, item: Any) -> SamplingParams:
    """A seeded evaluation samples each question from its own seed (question id, run seed),
    and the agent loop each sample from (that seed, sample index): the same checkpoint and
    seed give the same trajectories however the questions are batched."""
    s = settings.sampling
    if s.seed is None:
        return s
    return s.model_copy(update={"seed": stable_seed(item.id, s.seed)})


async def _run(task: Task, items: Sequence[Any], settings: EvalSettings,
               on_done: Callable[[ItemResult], None], engine: Any) -> list[ItemResult]:
    from services.rollout.agent import AgentLoop
    from services.rollout.engine_factory import build_engine
    from services.rollout.settings import EngineSettings
    from services.rollout.tools import ToolClients

    if engine is None:
        engine = build_engine(EngineSettings(
            kind=settings.engine, model_path=settings.model_path, device=settings.device,
            threads=settings.threads))
    tools = ToolClients(settings.executor, settings.search, timeout_s=settings.tool_timeout_s,
                        search_top_k=task.search_top_k or settings.search_top_k)
    loop = AgentLoop(engine, tools, task.tool_format)
    gate = asyncio.Semaphore(settings.concurrency)

    async def one(item: Any) -> ItemResult:
        async with gate:
            try:
                prompt = task.prompt(item.question, engine.tokenizer)
                trajs = await loop.run(prompt, settings.samples, _item_sampling(settings, item))
                # Grading may wait on a child process: keep it off the event loop.
                result = await asyncio.to_thread(_score, task, item, trajs)
            except ValueError as err:  # the engine refused the prompt (too long, empty)
                result = ItemResult(id=item.id, golds=task.golds(item), error=str(err))
        on_done(result)
        return result

    try:
        return list(await asyncio.gather(*(one(item) for item in items)))
    finally:
        await tools.close()


def evaluate_items(
    benchmark: str, task: Task, items: Sequence[Any], settings: EvalSettings, *,
    on_done: Callable[[ItemResult], Any] = lambda _: None, engine: Any = None,
) -> EvalReport:
    """Roll out every item of `task` ``settings.samples`` times, grade, and summarise.

    ``engine`` (an `services.rollout.engine.Engine`) defaults to the one ``settings`` names;
    pass one to share its loaded weights across several benchmarks.
    """
    start = time.perf_counter()
    results = asyncio.run(_run(task, items, settings, on_done, engine))
    return summarise(benchmark, settings, task.template_name, results,
                     time.perf_counter() - start)


def start_local_executor(log_dir: Path, *, workers: int = 2) -> tuple[ManagedProcess, str]:
    """A local executor server as a child process, serving, and its gRPC target.

    The caller stops it (``proc.stop()``); its log is ``log_dir / "executor.log"``.
    """
    from paretopo.healthcheck import grpc_serving
    from paretopo.netutil import free_port

    port, metrics_port = free_port(), free_port()
    proc = ManagedProcess.python_module(
        "executor", "services.tools.executor", "--port", str(port), "--metrics-port",
        str(metrics_port), "--workers", str(workers), log_path=log_dir / "executor.log")
    proc.start()
    target = f"127.0.0.1:{port}"
    try:
        proc.wait_until(lambda: grpc_serving(target), timeout=90)
    except BaseException:
        proc.stop()
        raise
    return proc, target
