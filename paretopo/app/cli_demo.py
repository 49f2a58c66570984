"""`paretopo demo` (the main job) and `paretopo bench` (every method, same seeds and budget)."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from paretopo.app.bench import Results, write_bench
from paretopo.app.demo import DemoOptions, DemoReport, report_markdown, run_demo, step_budget
from paretopo.app.stack import LocalStack, StackConfig, StackRunning
from paretopo.core.advantages import ALGORITHMS

console = Console()

BASELINES = ("grpo", "otc_grpo", "mo_grpo", "fixed_weight", "paretopo")
ABLATIONS = ("no_stage1", "no_stage2", "no_dynamic_weighting", "no_pareto_ranking")

TaskOpt = Annotated[str, typer.Option("--task", help="Testbed task: calc or kbqa.")]
MinutesOpt = Annotated[float | None, typer.Option(
    "--minutes", help="Optional wall-clock cap on RL per run (the budget is --steps, so a "
    "result does not depend on how busy the machine is).")]
StepsOpt = Annotated[int | None, typer.Option(
    "--steps", help="Training steps (default: the task's shipped run, 40).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of data, warm start and sampling.")]
ObjOpt = Annotated[int, typer.Option("--objectives", min=2, max=3,
                                     help="2: accuracy, tool efficiency; 3: + length.")]


def _live(opts: DemoOptions, title: str) -> tuple[DemoReport, LocalStack | None]:
    """Run one demo with a progress bar over its training steps and a line per step."""
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
               MofNCompleteColumn(), TimeElapsedColumn())
    total = step_budget(opts)
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task(f"{title}: warm start", total=total)

        def on_phase(phase: str) -> None:
            progress.update(bar, description=f"{title}: {phase}")

        def on_step(m: Any) -> None:
            from services.learner.metrics import console_line

            progress.console.print(console_line(m), highlight=False)
            progress.update(bar, completed=m.step,
                            description=f"{title}: step {m.step} (stage {m.stage})")

        def on_warning(text: str) -> None:
            progress.console.print(f"[yellow]warning:[/] {text}")

        report, stack = run_demo(opts, on_step=on_step, on_phase=on_phase, on_warning=on_warning)
        progress.update(bar, completed=report.steps, description=f"{title}: done")
    return report, stack


def demo(
    task: TaskOpt = "calc",
    minutes: MinutesOpt = None,
    steps: StepsOpt = None,
    seed: SeedOpt = 0,
    objectives: ObjOpt = 2,
    algorithm: Annotated[str, typer.Option(help="Method to train (see `paretopo bench`).")]
    = "paretopo",
    model: Annotated[Path | None, typer.Option(help="Starting checkpoint (default: warm start "
                                                     "in runs/warm/<task>, made if absent).")]
    = None,
    home: Annotated[Path, typer.Option(help="Run outputs.")] = Path("runs/demo"),
    keep_up: Annotated[bool, typer.Option(help="Keep the services (and the page) up until "
                                                "Ctrl-C after the report.")] = False,
    stage1_steps: Annotated[int | None, typer.Option(help="Override Stage-1 length.")] = None,
    eval_every: Annotated[int | None, typer.Option(help="Validate every N steps.")] = None,
    eval_prompts: Annotated[int | None, typer.Option(help="Validation prompts.")] = None,
    eval_samples: Annotated[int | None, typer.Option(
        help="Sampled completions per validation prompt (k).")] = None,
    group_size: Annotated[int | None, typer.Option("-G", help="Samples per prompt.")] = None,
    prompts_per_step: Annotated[int | None, typer.Option(help="Prompts per step.")] = None,
    train_items: Annotated[int | None, typer.Option(
        help="Training items drawn from (the first N of the training split).")] = None,
    resume: Annotated[str | None, typer.Option(
        help="Run id of an interrupted demo under --home: continue it from its last "
        "checkpoint (same options as the first time).")] = None,
) -> None:
    """Train a tool-using agent with ParetoPO through every service and report the outcome."""
    if algorithm not in ALGORITHMS:
        raise typer.BadParameter(f"{algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
    if resume is not None and not (home / resume / "checkpoints").is_dir():
        raise typer.BadParameter(f"no checkpoint of run {resume!r} under {home}; the run ids "
                                 f"there: {', '.join(sorted(p.name for p in home.glob('demo-*')))}")
    opts = DemoOptions(task=task, algorithm=algorithm, minutes=minutes, max_steps=steps,
                       seed=seed, objectives=objectives, model=model, home=home,
                       stage1_steps=stage1_steps, eval_every=eval_every,
                       eval_prompts=eval_prompts, eval_samples=eval_samples,
                       group_size=group_size,
                       prompts_per_step=prompts_per_step, train_items=train_items,
                       run_id=resume)
    with _sigterm_interrupts():
        try:
            report, stack = _live(opts, f"{algorithm} on {task}")
        except (StackRunning, FileNotFoundError, ValueError, RuntimeError, TimeoutError) as exc:
            console.print(f"[red]demo failed:[/] {exc}")
            raise typer.Exit(1) from None
        console.print(report_markdown(report), markup=False, highlight=False)
        if stack is None:
            return
        try:
            if keep_up:
                _wait_for_ctrl_c(report.page)
        finally:
            stack.stop()


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (`kill`, an orchestrator stopping the job) unwinds like Ctrl-C, so the services
    this command started are stopped by its `finally` blocks instead of being left running."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _wait_for_ctrl_c(page: str) -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    console.print(f"services are up; archive page: [bold]{page}[/] — Ctrl-C stops them")
    stop.wait()


def bench(
    tasks: Annotated[list[str], typer.Option("--task", help="Task(s); default both.")]
    = ["calc", "kbqa"],  # noqa: B006 - typer reads the default, never mutates it
    methods: Annotated[list[str] | None, typer.Option("--method", help="Method(s); default "
                                                      "the baselines and paretopo.")] = None,
    ablations: Annotated[bool, typer.Option(help="Also the four ParetoPO ablations.")] = False,
    minutes: MinutesOpt = None,
    steps: StepsOpt = None,
    seeds: Annotated[list[int], typer.Option(
        "--seed", help="Seeds (warm start, data, sampling); repeat; default 0 1 2.")]
    = [0, 1, 2],  # noqa: B006 - typer reads the default, never mutates it
    objectives: ObjOpt = 2,
    out: Annotated[Path, typer.Option(help="Output folder (a new dated folder inside).")]
    = Path("runs/bench"),
    resume: Annotated[Path | None, typer.Option(
        help="A bench folder to continue: finished runs are kept, an interrupted one resumes "
        "from its checkpoint, missing ones run.")] = None,
) -> None:
    """Train every method on every task for every seed with the same budget; write a table
    with 95 % intervals (EM, #Tool, calls on tool-needing prompts, hypervolume), which
    differences against ParetoPO the seeds resolve, every method's front, and the raw
    numbers as JSON."""
    chosen = list(methods or BASELINES) + (list(ABLATIONS) if ablations else [])
    unknown = [m for m in chosen if m not in ALGORITHMS]
    if unknown:
        raise typer.BadParameter(f"unknown method(s) {unknown}; known: {', '.join(ALGORITHMS)}")
    out = resume or out / time.strftime("%Y%m%d-%H%M%S")
    results: Results = {}
    with _sigterm_interrupts():
        for seed in seeds:
            # a stack per seed: kbqa's search service must index that seed's own world
            home = out / f"stack-seed{seed}"
            runs = [DemoOptions(task=task, algorithm=method, minutes=minutes, max_steps=steps,
                                seed=seed, objectives=objectives, home=out / "runs",
                                stack_home=home, run_id=f"bench-{task}-{method}-s{seed}")
                    for task in tasks for method in chosen]
            stack = None
            if not all(_report_path(o).is_file() for o in runs):  # a resumed bench may be done
                stack = LocalStack(StackConfig(
                    home=home, archive_grpc_port=0, archive_http_port=0, executor_port=0,
                    search_port=0, rollout_http_port=0, world_seed=seed))
                with console.status(f"starting the services (seed {seed})"):
                    stack.start()
            try:
                for opts in runs:
                    by_seed = results.setdefault(opts.task, {}).setdefault(opts.algorithm, {})
                    by_seed[seed] = _bench_run(opts)
            finally:
                if stack is not None:
                    stack.stop()
    budget = f"{steps or 'the shipped'} steps" + (f" (cap {minutes} min)" if minutes else "")
    text = write_bench(out, tasks, chosen, results, seeds, budget)
    console.print(text, markup=False, highlight=False)
    console.print(f"wrote {out}/table.md, results.json and fronts-*.png")


def _report_path(opts: DemoOptions) -> Path:
    return opts.home / str(opts.run_id) / "report.json"


def _bench_run(opts: DemoOptions) -> dict[str, Any]:
    """One run's report: read back when it finished before (a resumed bench), else trained."""
    done = _report_path(opts)
    if done.is_file():
        console.print(f"{opts.run_id}: finished before, kept")
        return json.loads(done.read_text())
    report, _ = _live(opts, f"{opts.algorithm} on {opts.task} (seed {opts.seed})")
    return asdict(report)
