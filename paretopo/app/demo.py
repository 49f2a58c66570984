"""The main job: ParetoPO (or a baseline) on a testbed task through every service, then a report.

`run_demo` warm-starts the tiny policy when no checkpoint exists, brings the local stack up
(or joins the one `paretopo up` started), trains with the learner in this process while the
rollout workers, tools and archive run as their own processes, validates at the end, and
writes `report.json`, `report.md` and a PNG of the front over checkpoints. `paretopo bench`
calls it once per method with the same seeds, data and budget.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from paretopo.app.report import (
    Checkpoint,
    markdown_table,
    plot_front_over_checkpoints,
    plot_validation_trajectory,
)
from paretopo.app.stack import (
    LocalStack,
    StackConfig,
    StackState,
    default_rollout_workers,
    running_stack,
    torch_threads,
)

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
THIRD_OBJECTIVE = "length_efficiency"
NEEDS_TOOL = "needs a tool"  # the report's row of the prompts whose answer needs a tool call

#: Sampled EM on the tool-needing validation prompts below which a warm start gives RL almost
#: no reward to learn from (a failed warm start sits at 0.00-0.01, sound ones at 0.2-0.5).
WARM_START_FLOOR = 0.02


def warm_start_warning(needs_tool_em: float | None) -> str | None:
    """What to tell the user when the warm start cannot be improved by RL, else None."""
    if needs_tool_em is None or needs_tool_em >= WARM_START_FLOOR:
        return None
    return (f"the warm start answers {needs_tool_em:.1%} of its tool-needing validation "
            "samples right, so RL has almost no reward to learn from and will not gain much. "
            "This seed's warm start did not learn to copy the question into its calls "
            "(docs/testbed.md, 'Warm-start seeds'): try another --seed, or a longer warm start.")


@dataclass
class DemoOptions:
    """What one demo run trains and for how long."""

    task: str = "calc"
    algorithm: str = "paretopo"
    minutes: float | None = None  # optional wall-clock cap on RL; the budget is in steps
    max_steps: int | None = None  # None: the shipped run configuration's
    seed: int = 0
    objectives: int = 2
    model: Path | None = None
    home: Path = Path("runs/demo")
    stack_home: Path = Path("runs/stack")
    rollout_workers: int = field(default_factory=default_rollout_workers)
    group_size: int | None = None
    prompts_per_step: int | None = None
    eval_every: int | None = None
    eval_prompts: int | None = None
    eval_samples: int | None = None
    stage1_steps: int | None = None
    train_items: int | None = None
    run_id: str | None = None
    threads: int | None = None  # learner torch threads; None: its share of the cores


@dataclass
class DemoReport:
    """What the run did, in the numbers the paper reports plus the archive's view."""

    run_id: str
    task: str
    algorithm: str
    objectives: list[str]
    steps: int
    final_stage: int
    stopped_by: str
    start: dict[str, float]
    end: dict[str, float]
    ideal: dict[str, float]
    distance: dict[str, float]
    by_difficulty: dict[str, dict[str, float]]  # level -> start/end EM and calls, ideal calls
    front: list[dict[str, Any]]
    hypervolume: float
    weights: list[float]
    rho: float
    known_prompts: int
    stage_switch_step: int | None
    weights_history: list[list[float]]
    evaluations: list[dict[str, float]]
    groups_consumed: int
    wall_s: float
    page: str
    plot: str
    trajectory_plot: str
    samples_per_prompt: int
    eval_temperature: float
    warm_start: str = ""  # the starting checkpoint's directory
    files: dict[str, str] = field(default_factory=dict)


def warm_start(task: str, model: Path | None, seed: int,
               on_warning: Callable[[str], None] = lambda s: None) -> Path:
    """The starting checkpoint: `model` if given, else `runs/warm/<task>` (trained if absent or
    made by another recipe, or from another version of the task's items)."""
    from paretopo.testbed.config import load_sft_config
    from paretopo.testbed.sft import made_by_recipe, train_sft

    path = model or Path("runs/warm") / (task if seed == 0 else f"{task}-seed{seed}")
    # The config's `threads: auto`: every core only where they give the one-thread weights.
    # On the VM of 2026-12-02 two threads gave another warm start (probe 0.054 against
    # 0.020) from which RL gained +0.014 instead of +0.12-0.14.
    cfg = load_sft_config(CONFIGS / "testbed" / f"sft_{task}.yaml").model_copy(
        update={"out_dir": path, "seed": seed})
    if (path / "model.safetensors").is_file():
        if model is not None or made_by_recipe(path, cfg):
            return path
        on_warning(f"{path} was made by another warm-start recipe or from another version "
                   f"of the {task} items: training the warm start again")
    elif model is not None:
        raise FileNotFoundError(f"no checkpoint in {model} (expected model.safetensors); "
                                f"make one with `paretopo sft --task {task} --out {model}`")
    train_sft(cfg)
    return path


def run_config(opts: DemoOptions, model: Path, stack: StackState, run_id: str) -> Any:
    """The learner's run configuration: the shipped one of the task, adjusted by `opts`."""
    from services.learner.config import RunConfig, load_run_config

    raw = load_run_config(CONFIGS / "runs" / f"{opts.task}_paretopo.yaml").model_dump(mode="json")
    raw.update(run_id=run_id, seed=opts.seed, model_path=str(model),
               output_dir=str(opts.home / run_id))
    raw["algorithm"]["name"] = opts.algorithm
    if opts.objectives == 3:
        _add_third_objective(raw["algorithm"])
    raw["budget"] = {"max_minutes": opts.minutes, "max_steps": step_budget(opts)}
    for key, value in (("group_size", opts.group_size), ("prompts_per_step", opts.prompts_per_step),
                       ("stage1_steps", opts.stage1_steps)):
        if value is not None:
            raw[key] = value
    if opts.train_items is not None:
        raw["data"]["train_items"] = opts.train_items
    if opts.eval_every is not None:
        raw["eval"]["every"] = opts.eval_every
    if opts.eval_prompts is not None:
        raw["eval"]["prompts"] = opts.eval_prompts
    if opts.eval_samples is not None:
        raw["eval"]["samples"] = opts.eval_samples
    raw["backend"]["threads"] = opts.threads or torch_threads(opts.rollout_workers + 1)
    raw["services"].update(redis_url=stack.redis_url, archive=stack.archive_grpc,
                           archive_token=stack.write_token, metrics_port=None)
    return RunConfig.model_validate(raw)


def step_budget(opts: DemoOptions) -> int:
    """Training steps of the run: `opts.max_steps`, else the shipped configuration's."""
    from services.learner.config import load_run_config

    shipped = load_run_config(CONFIGS / "runs" / f"{opts.task}_paretopo.yaml").budget.max_steps
    return opts.max_steps or shipped or 40


def _add_third_objective(algorithm: dict[str, Any]) -> None:
    """M = 3: response-length efficiency beside accuracy and tool efficiency."""
    if THIRD_OBJECTIVE in algorithm["objectives"]:
        return
    algorithm["objectives"] = [*algorithm["objectives"], THIRD_OBJECTIVE]
    stage1 = algorithm["stage1"]
    w = stage1["initial_weights"]
    stage1["initial_weights"] = [0.8 * x for x in w] + [0.2]
    stage1["reference_point"] = [*stage1["reference_point"], 0.0]


def _ensure_stack(opts: DemoOptions) -> tuple[StackState, LocalStack | None]:
    """Join the stack `paretopo up` runs, or start one for this demo (returned to stop)."""
    if (state := running_stack(opts.stack_home)) is not None:
        if opts.task == "kbqa" and state.world_seed != opts.seed:
            raise ValueError(
                f"the stack running from {opts.stack_home} searches the kbqa world of seed "
                f"{state.world_seed}, and this demo's seed is {opts.seed}: its questions would "
                "search another world's passages. Stop that stack (`paretopo down`) or run "
                f"with --seed {state.world_seed}.")
        return state, None
    stack = LocalStack(StackConfig(
        home=opts.home / "stack", rollout_workers=opts.rollout_workers, archive_grpc_port=0,
        archive_http_port=0, executor_port=0, search_port=0, rollout_http_port=0,
        world_seed=opts.seed))
    return stack.start(), stack


async def _train(config: Any, on_step: Callable[[Any], None],
                 on_warning: Callable[[str], None]) -> tuple[Any, list[dict]]:
    """Train to the budget, then validate the final policy if the last step did not."""
    from services.learner.loop import Learner

    def step_and_check(m: Any) -> None:
        if m.step == 1 and learner.evaluations:  # the warm start's validation came first
            warning = warm_start_warning(learner.evaluations[0].get("needs_tool/em"))
            if warning:
                on_warning(warning)
        on_step(m)

    learner = Learner(config, on_step=step_and_check)
    try:
        summary = await learner.run()
        if not learner.evaluations or learner.evaluations[-1]["step"] != learner.state.step:
            await learner.validate()
        return summary, list(learner.evaluations)
    finally:
        await learner.close()


async def _archive_state(stack: StackState, run_id: str) -> Any:
    from services.archive.client import ArchiveClient

    async with ArchiveClient(stack.archive_grpc, token=stack.write_token) as client:
        return (await client.run_state(run_id)).state


def _ideal(task: str, n: int, seed: int) -> tuple[dict[str, float], dict[str, float]]:
    """The ideal (EM, #Tool) of the validation prompts, and its calls per difficulty (and
    on the prompts that need a tool)."""
    from statistics import fmean

    from paretopo.testbed.tasks import ideal_point, load_items

    point = ideal_point(task, "validation", n, seed=seed)
    needed = [i.min_calls for i in load_items(task, "validation", n, seed=seed) if i.min_calls]
    calls = dict(point.calls_by_difficulty)
    calls[NEEDS_TOOL] = fmean(needed) if needed else float("nan")
    return {"em": point.em, "tool_calls": point.mean_calls}, calls


def _by_difficulty(first: dict[str, float], last: dict[str, float],
                   ideal_calls: dict[str, float]) -> dict[str, dict[str, float]]:
    levels = sorted(k.removeprefix("em/") for k in first if k.startswith("em/"))
    rows = {lv: {"start_em": first[f"em/{lv}"], "end_em": last.get(f"em/{lv}", float("nan")),
                 "start_calls": first[f"tool_calls/{lv}"],
                 "end_calls": last.get(f"tool_calls/{lv}", float("nan")),
                 "ideal_calls": ideal_calls.get(lv, float("nan"))} for lv in levels}
    if "needs_tool/em" in first:
        rows[NEEDS_TOOL] = {
            "start_em": first["needs_tool/em"], "end_em": last.get("needs_tool/em", float("nan")),
            "start_calls": first["needs_tool/tool_calls"],
            "end_calls": last.get("needs_tool/tool_calls", float("nan")),
            "ideal_calls": ideal_calls.get(NEEDS_TOOL, float("nan"))}
    return rows


def _metrics_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_demo(
    opts: DemoOptions,
    on_step: Callable[[Any], None] = lambda m: None,
    on_phase: Callable[[str], None] = lambda s: None,
    on_warning: Callable[[str], None] = lambda s: None,
) -> tuple[DemoReport, LocalStack | None]:
    """Warm start, stack, training, report. Returns the stack when this call started it (the
    caller stops it, or keeps it up for the page)."""
    started = time.monotonic()
    on_phase("warm start")
    model = warm_start(opts.task, opts.model, opts.seed, on_warning)
    on_phase("starting the services")
    stack_state, stack = _ensure_stack(opts)
    try:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_id = opts.run_id or f"demo-{opts.task}-{opts.algorithm}-{stamp}"
        config = run_config(opts, model, stack_state, run_id)
        on_phase("training")
        summary, evaluations = asyncio.run(_train(config, on_step, on_warning))
        state = asyncio.run(_archive_state(stack_state, run_id))
        report = _report(opts, config, summary, evaluations, state, stack_state,
                         time.monotonic() - started)
    except BaseException:
        if stack is not None:
            stack.stop()
        raise
    return report, stack


def _report(opts: DemoOptions, config: Any, summary: Any, evaluations: list[dict],
            state: Any, stack: StackState, wall_s: float) -> DemoReport:
    out = config.output_dir
    objectives = list(config.algorithm.objectives)
    steps_log = _metrics_log(config.metrics_log)
    switch = next((m["step"] for m in steps_log if m["stage"] == 2), None)
    ideal, ideal_calls = _ideal(opts.task, config.eval.prompts, opts.seed)
    first, last = evaluations[0], evaluations[-1]

    def point(e: dict[str, float]) -> dict[str, float]:
        return {"em": e["em"], "tool_calls": e["tool_calls"], **{k: e[k] for k in objectives}}

    plot = plot_front_over_checkpoints(
        [Checkpoint(int(e["step"]), tuple(e[k] for k in objectives)) for e in evaluations],
        objectives, out / "front.png", ideal=[1.0] * len(objectives),
        title=f"{config.algorithm.name} on {opts.task}: validation outcomes by step")
    trajectory = plot_validation_trajectory(
        evaluations, out / "trajectory.png", ideal=ideal,
        title=f"{config.algorithm.name} on {opts.task}: sampled validation, k = "
              f"{config.eval.samples}")
    report = DemoReport(
        run_id=config.run_id, task=opts.task, algorithm=config.algorithm.name,
        warm_start=str(config.model_path), objectives=objectives, steps=summary.steps,
        final_stage=summary.stage,
        stopped_by=summary.stopped_by, start=point(first), end=point(last), ideal=ideal,
        distance={"em_gap": ideal["em"] - last["em"],
                  "extra_calls": last["tool_calls"] - ideal["tool_calls"]},
        by_difficulty=_by_difficulty(first, last, ideal_calls),
        front=[{"step": p.step, "y": list(p.outcome.values)} for p in state.front],
        hypervolume=state.hypervolume, weights=list(state.weights), rho=state.rho,
        known_prompts=state.known_prompts, stage_switch_step=switch,
        weights_history=[m["weights"] for m in steps_log], evaluations=evaluations,
        groups_consumed=sum(m["groups"] for m in steps_log), wall_s=wall_s,
        page=f"{stack.page}?run={config.run_id}", plot=str(plot),
        trajectory_plot=str(trajectory), samples_per_prompt=config.eval.samples,
        eval_temperature=config.eval_sampling.temperature)
    report.files = {"report_json": str(out / "report.json"), "report_md": str(out / "report.md"),
                    "metrics": str(config.metrics_log)}
    (out / "report.json").write_text(json.dumps(asdict(report), indent=2))
    (out / "report.md").write_text(report_markdown(report))
    return report


def report_markdown(r: DemoReport) -> str:
    """The short human report: start vs end, distance to the ideal, the front."""
    rows = [["start (step 0)", r.start["em"], r.start["tool_calls"]],
            [f"end (step {r.steps})", r.end["em"], r.end["tool_calls"]],
            ["ideal", r.ideal["em"], r.ideal["tool_calls"]]]
    level_rows = [[level, v["start_em"], v["end_em"], v["start_calls"], v["end_calls"],
                   v["ideal_calls"]] for level, v in r.by_difficulty.items()]
    front_rows = [[p["step"], *[f"{v:.3f}" for v in p["y"]]] for p in r.front]
    return "\n\n".join([
        f"# {r.algorithm} on `{r.task}` ({r.run_id})",
        f"{r.steps} steps, stopped by {r.stopped_by}; Stage 2 from step "
        f"{r.stage_switch_step if r.stage_switch_step is not None else '(not reached)'}; "
        f"{r.groups_consumed} groups trained on; {r.known_prompts} prompts with a known n*; "
        f"{r.wall_s / 60:.1f} min in all. Warm start: `{r.warm_start}`.",
        f"Validation: {r.samples_per_prompt} completion(s) of each prompt at temperature "
        f"{r.eval_temperature:g}.",
        *([f"Warning: {w}"] if (w := warm_start_warning(
            r.by_difficulty.get(NEEDS_TOOL, {}).get("start_em"))) else []),
        markdown_table(["validation", "EM", "#Tool"], rows),
        markdown_table(["difficulty", "EM start", "EM end", "calls start", "calls end",
                        "ideal calls"], level_rows),
        f"Distance to the ideal: EM gap {r.distance['em_gap']:.3f}, "
        f"{r.distance['extra_calls']:+.3f} calls per question above the minimum.",
        f"Archive front (hypervolume {r.hypervolume:.4f}, weights "
        f"{', '.join(f'{w:.2f}' for w in r.weights)}, ρ {r.rho:.3f}):",
        markdown_table(["step", *r.objectives], front_rows),
        f"Plots: `{r.trajectory_plot}` (EM against #Tool over the run), `{r.plot}` (the "
        f"objective space). Live page: {r.page}",
    ]) + "\n"
