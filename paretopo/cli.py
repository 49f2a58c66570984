"""The `paretopo` console script. Commands import their heavy dependencies (torch,
transformers) inside the command, so `paretopo --help` stays instant."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="ParetoPO: multi-objective RL for tool-using LLM agents.", no_args_is_help=True
)
testbed_app = typer.Typer(help="The embedded CPU testbed: tasks, ideal points, evaluation.")
app.add_typer(testbed_app, name="testbed")

TaskOpt = Annotated[str, typer.Option("--task", help="Testbed task: calc or kbqa.")]
SplitOpt = Annotated[str, typer.Option("--split", help="train, validation or test.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Task generator seed.")]


@app.command()
def sft(
    task: TaskOpt = "calc",
    config: Annotated[
        Path | None, typer.Option("--config", help="YAML SftConfig; default configs/testbed/.")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Checkpoint directory.")] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="Max optimizer steps.")] = None,
    max_minutes: Annotated[
        float | None, typer.Option("--max-minutes", help="Wall-clock training budget.")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of data and init.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the config and exit.")] = False,
) -> None:
    """Warm-start (SFT) the testbed policy on CPU and save a Hugging Face checkpoint."""
    from paretopo.testbed.config import SftConfig, load_sft_config

    default_file = Path("configs/testbed") / f"sft_{task}.yaml"
    if config is not None:
        cfg = load_sft_config(config)
    elif default_file.is_file():
        cfg = load_sft_config(default_file)
    else:
        cfg = SftConfig(task=task)
    overrides: dict = {"task": task}
    if out is not None:
        overrides["out_dir"] = out
    if seed is not None:
        overrides["seed"] = seed
    optim = cfg.optim.model_copy(
        update={k: v for k, v in (("max_steps", steps), ("max_minutes", max_minutes)) if v}
    )
    cfg = SftConfig.model_validate(cfg.model_dump() | overrides | {"optim": optim.model_dump()})
    if dry_run:
        typer.echo(cfg.model_dump_json(indent=2))
        return

    from paretopo.testbed.sft import train_sft

    result = train_sft(cfg)
    tail = result.losses[-20:]
    typer.echo(
        f"saved {result.checkpoint} after {result.steps} steps in {result.wall_s:.0f}s; "
        f"loss {result.losses[0]:.3f} -> {sum(tail) / len(tail):.3f} (mean of last {len(tail)})"
    )


@testbed_app.command("ideal")
def ideal(
    task: TaskOpt = "calc",
    split: SplitOpt = "validation",
    n: Annotated[int | None, typer.Option("--n", help="Items (default: the eval set).")] = None,
    seed: SeedOpt = 0,
) -> None:
    """Print the ideal point (EM = 1, minimal mean #Tool) of a task's split as JSON."""
    from dataclasses import asdict

    from paretopo.testbed.tasks import ideal_point

    typer.echo(json.dumps(asdict(ideal_point(task, split, n, seed=seed)), indent=2))


@testbed_app.command("eval")
def evaluate(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint directory (HF format).")],
    task: TaskOpt = "calc",
    split: SplitOpt = "validation",
    n: Annotated[int | None, typer.Option("--n", help="Items (default: the eval set).")] = None,
    seed: SeedOpt = 0,
    temperature: Annotated[float, typer.Option(help="0 = greedy.")] = 0.0,
    show: Annotated[int, typer.Option(help="Print this many trajectories.")] = 0,
) -> None:
    """Evaluate a checkpoint on a split with real tools: EM, #Tool, r_tool, distance to ideal."""
    import torch

    from paretopo.testbed.evaluate import EvalSettings, run_policy, summarise
    from paretopo.testbed.model import load_policy
    from paretopo.testbed.tasks import ideal_point, load_items

    torch.set_num_threads(2)
    model, tokenizer = load_policy(checkpoint)
    items = load_items(task, split, n, seed=seed)
    settings = EvalSettings(temperature=temperature, seed=seed)
    report = summarise(task, run_policy(model, tokenizer, task, items, settings, world_seed=seed))
    target = ideal_point(task, split, n, seed=seed)
    for traj in report.trajectories[:show]:
        typer.echo(f"--- {traj.item.question}  gold={traj.item.answer}\n{traj.completion}\n")
    summary = {
        "task": task,
        "split": split,
        "n": report.n,
        "em": report.em,
        "mean_calls": report.mean_calls,
        "mean_r_tool": report.mean_r_tool,
        "ideal": {"em": target.em, "mean_calls": target.mean_calls},
        "distance": report.distance_to(target),
        "by_difficulty": report.by_difficulty,
    }
    typer.echo(json.dumps(summary, indent=2))


@testbed_app.command("corpus")
def corpus(
    out: Annotated[Path, typer.Argument(help="Output JSONL file (id, title, text).")],
    seed: SeedOpt = 0,
) -> None:
    """Write the kbqa corpus as JSONL, the format the search service indexes."""
    from dataclasses import asdict

    from paretopo.testbed.kbqa import build_world

    passages = build_world(seed).passages()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(asdict(p)) + "\n" for p in passages))
    typer.echo(f"wrote {len(passages)} passages to {out}")


@testbed_app.command("items")
def items(
    out: Annotated[Path, typer.Argument(help="Output JSONL file, one item per line.")],
    task: TaskOpt = "calc",
    split: SplitOpt = "train",
    n: Annotated[int | None, typer.Option("--n", help="Items (calc default 150).")] = None,
    seed: SeedOpt = 0,
) -> None:
    """Write a split's items (id, question, answer, difficulty, min_calls, ...) as JSONL."""
    from dataclasses import asdict

    from paretopo.testbed.tasks import load_items

    rows = load_items(task, split, n, seed=seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(asdict(r)) + "\n" for r in rows))
    typer.echo(f"wrote {len(rows)} items to {out}")


def _register_stack_commands() -> None:
    from paretopo.cli_demo import bench, demo
    from paretopo.cli_stack import down, up

    app.command()(up)
    app.command()(down)
    app.command()(demo)
    app.command()(bench)


_register_stack_commands()


# ---- benchmarks: `paretopo data ...` and `paretopo eval-bench` --------------------------------

data_app = typer.Typer(help="The paper's benchmark files: list, inspect, check.")
app.add_typer(data_app, name="data")

DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Shared data directory (env PARETOPO_SHARED_DATA)."),
]


@data_app.command("list")
def data_list(data_dir: DataDirOpt = None) -> None:
    """List the named benchmarks, their files, kinds and row counts."""
    from paretopo.datasets import BENCHMARKS, DatasetError, load_benchmark, shared_data_dir

    root = data_dir or shared_data_dir()
    for name, b in BENCHMARKS.items():
        try:
            rows: int | str = len(load_benchmark(name, data_dir=root))
        except DatasetError as err:
            rows = f"unavailable ({err})"
        typer.echo(f"{name:14} {b.kind:5} {b.tool_format:10} {rows}  {root / b.path}")


@data_app.command("show")
def data_show(
    benchmark: Annotated[str, typer.Argument(help="Benchmark name or file (.jsonl/.parquet).")],
    limit: Annotated[int, typer.Option("--limit", help="Records to print.")] = 3,
    data_dir: DataDirOpt = None,
) -> None:
    """Print the first records of a benchmark as JSON lines (fails naming a bad line)."""
    from paretopo.datasets import DatasetError, load_benchmark

    try:
        records = load_benchmark(benchmark, data_dir=data_dir, limit=limit)
    except DatasetError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    for rec in records:
        typer.echo(rec.model_dump_json())


@app.command("eval-bench")
def eval_bench(
    model: Annotated[Path, typer.Option("--model", help="HF causal LM checkpoint directory.")],
    dataset: Annotated[str, typer.Option("--dataset", help="Benchmark name or file.")],
    limit: Annotated[int | None, typer.Option("--limit", help="First N questions.")] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="Prompt template: torl or search_r1.")
    ] = None,
    executor: Annotated[
        str | None, typer.Option("--executor", help="Executor host:port; default: start one.")
    ] = None,
    search: Annotated[str | None, typer.Option("--search", help="Search host:port.")] = None,
    samples: Annotated[int, typer.Option("--samples", "-G", help="Samples per question.")] = 1,
    engine: Annotated[str, typer.Option("--engine", help="torch or vllm.")] = "torch",
    device: Annotated[str, typer.Option("--device", help="cpu or cuda (torch).")] = "cpu",
    temperature: Annotated[float, typer.Option(help="0 = greedy.")] = 0.0,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per turn.")] = 512,
    max_completion_tokens: Annotated[int, typer.Option(help="Tokens per trajectory.")] = 3072,
    max_tool_calls: Annotated[
        int | None, typer.Option(help="Calls per trajectory (default: the format's anchor).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Sampling seed.")] = 0,
    concurrency: Annotated[int, typer.Option(help="Questions in flight.")] = 4,
    out: Annotated[Path | None, typer.Option("--out", help="Report JSON path.")] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Evaluate a checkpoint on a benchmark: EM and #Tool (the paper's metrics), mean r_tool."""
    import time

    from tqdm import tqdm

    from paretopo.datasets import BENCHMARKS, DatasetError, TaskKind, load_benchmark
    from paretopo.datasets.evaluation import (
        EvalSettings,
        evaluate_records,
        start_local_executor,
    )
    from paretopo.jobs import SamplingParams
    from paretopo.templates import prompt_template

    try:
        records = load_benchmark(dataset, data_dir=data_dir, limit=limit)
    except DatasetError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    if fmt is None:
        known = BENCHMARKS.get(dataset)
        qa = known.kind is TaskKind.QA if known else records[0].kind is TaskKind.QA
        fmt = "search_r1" if qa else "torl"
    template = prompt_template(fmt)
    calls = template.tool_format.default_max_tool_calls if max_tool_calls is None else (
        max_tool_calls)
    sampling = SamplingParams(
        temperature=temperature, max_new_tokens=max_new_tokens, seed=seed,
        max_completion_tokens=max_completion_tokens,
        max_tool_calls=4 if calls is None else calls)
    out = out or Path("runs/eval") / f"{Path(dataset).stem}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    uses_python = any(c.tool == "python" for c in template.tool_format.calls)
    server = None
    if executor is None and uses_python:
        server, executor = start_local_executor(out.parent)
    settings = EvalSettings(
        model_path=str(model), engine=engine, device=device, executor=executor, search=search,
        samples=samples, concurrency=concurrency, sampling=sampling)
    try:
        with tqdm(total=len(records), desc=f"{dataset} ({fmt})", unit="q") as bar:
            report = evaluate_records(Path(dataset).stem, records, template, settings,
                                      on_done=lambda _: bar.update(1))
    finally:
        if server is not None:
            server.stop()
    out.write_text(report.model_dump_json(indent=2))
    typer.echo(f"{'benchmark':14} {'n':>5} {'EM':>7} {'#Tool':>7} {'r_tool':>7}")
    typer.echo(f"{report.benchmark:14} {report.n_questions:>5} {100 * report.em:>6.1f}% "
               f"{report.mean_tool_calls:>7.2f} {report.mean_r_tool:>7.3f}")
    if report.failed_questions:
        typer.echo(f"{report.failed_questions} question(s) could not be rolled out (see report)")
    typer.echo(f"report: {out}")
