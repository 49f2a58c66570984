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
    task: Annotated[str | None, typer.Option(
        "--task", help="Testbed task: calc or kbqa (default: the config's, else calc).")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="YAML SftConfig; default configs/testbed/.")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Checkpoint directory.")] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="Max optimizer steps.")] = None,
    max_minutes: Annotated[
        float | None, typer.Option("--max-minutes", help="Wall-clock training budget.")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of data and init.")] = None,
    restarts: Annotated[int | None, typer.Option(
        "--restarts", min=0, help="Runs from another init when the copy probe fails.")] = None,
    threads: Annotated[int | None, typer.Option(
        "--threads", min=1, help="torch threads (default: the config's; calc's 'auto' keeps "
        "every core only where a short check gives the one-thread weights bit for bit, "
        "faster). On some CPUs more threads give other weights.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the config and exit.")] = False,
) -> None:
    """Warm-start (SFT) the testbed policy on CPU and save a Hugging Face checkpoint."""
    from paretopo.testbed.config import SftConfig, load_sft_config

    default_file = Path("configs/testbed") / f"sft_{task or 'calc'}.yaml"
    if config is not None:
        cfg = load_sft_config(config)
        if task is not None and task != cfg.task:
            raise typer.BadParameter(
                f"--task {task} contradicts task: {cfg.task} in {config}; drop one of them")
    elif default_file.is_file():
        cfg = load_sft_config(default_file)
    else:
        cfg = SftConfig(task=task or "calc")
    overrides: dict = {}
    if out is not None:
        overrides["out_dir"] = out
    if seed is not None:
        overrides["seed"] = seed
    if restarts is not None:
        overrides["restarts"] = restarts
    if threads is not None:
        overrides["threads"] = threads
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
    if len(result.attempts) > 1:
        typer.echo(f"kept init seed {result.init_seed} of {len(result.attempts)} runs "
                   f"(init seeds {', '.join(str(a['init_seed']) for a in result.attempts)})")
    if result.probe is not None:
        typer.echo(("" if result.probe.copies else "warning: ") + result.probe.verdict(),
                   err=not result.probe.copies)


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
    samples: Annotated[int, typer.Option(
        "--samples", "-k", help="Completions per question (1 with --temperature 0: greedy).")
    ] = 8,
    temperature: Annotated[float, typer.Option(help="0 = greedy.")] = 1.0,
    show: Annotated[int, typer.Option(help="Print this many trajectories.")] = 0,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Directory of report.json and the tool servers' logs "
        "(default runs/eval/testbed-<task>-<time>).")] = None,
) -> None:
    """Evaluate a checkpoint on a split through the rollout agent loop and the real tool
    services (what the learner's validation runs): EM, #Tool, per difficulty, on the items
    that need a tool, and the distance to the ideal. Sampling is seeded per (question,
    sample), so the same checkpoint and seed give the same numbers."""
    import time

    from tqdm import tqdm

    from paretopo.app.eval_services import ToolServices
    from paretopo.app.evaluation import EvalSettings, evaluate_items
    from paretopo.tasks import get_task

    if temperature == 0 and samples > 1:
        raise typer.BadParameter("greedy samples are all the same: use --samples 1 with "
                                 "--temperature 0")
    the_task = get_task(task)
    items = the_task.items(split, n, seed=seed)
    out = out or Path("runs/eval") / f"testbed-{task}-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    sampling = testbed_sampling(task).model_copy(update={"temperature": temperature,
                                                          "seed": seed})
    with ToolServices(out, world_seed=seed) as services:
        settings = EvalSettings(
            model_path=str(checkpoint), threads=1, samples=samples, sampling=sampling,
            executor=services.executor() if "python" in the_task.tools else None,
            search=services.search(f"testbed-{task}") if "search" in the_task.tools else None)
        with tqdm(total=len(items), desc=f"testbed-{task} (k = {samples})", unit="q") as bar:
            try:
                report = evaluate_items(f"testbed-{task}", the_task, items, settings,
                                        on_done=lambda _: bar.update(1))
            finally:
                the_task.close()  # its grader's child process
    target = the_task.ideal(split, n, seed=seed)
    for item in report.items[:show]:
        typer.echo(f"--- {item.id} golds={item.golds} answers={item.answers} "
                   f"calls={item.tool_calls}")
    summary = {
        "task": task, "split": split, "n": report.n_questions, "samples": samples,
        "temperature": temperature, "em": report.em, "mean_calls": report.mean_tool_calls,
        "mean_r_tool": report.mean_r_tool,
        "ideal": {"em": target.em, "mean_calls": target.mean_calls},
        "distance": {"em_gap": target.em - report.em,
                     "extra_calls": report.mean_tool_calls - target.mean_calls},
        "by_difficulty": report.by_difficulty, "needs_tool": report.needs_tool,
    }
    (out / "report.json").write_text(report.model_dump_json(indent=2))
    typer.echo(json.dumps(summary, indent=2))


def testbed_sampling(task: str):
    """The validation sampling of the task's shipped run (configs/runs/<task>_paretopo.yaml),
    so `testbed eval` measures what the learner's validation measures."""
    from paretopo.app.demo import CONFIGS
    from services.learner.config import load_run_config

    return load_run_config(CONFIGS / "runs" / f"{task}_paretopo.yaml").eval_sampling


@testbed_app.command("corpus")
def corpus(
    out: Annotated[Path, typer.Argument(help="Output JSONL file (id, title, text).")],
    seed: SeedOpt = 0,
) -> None:
    """Write the kbqa corpus as JSONL, the format the search service indexes."""
    from paretopo.testbed.kbqa import write_corpus

    typer.echo(f"wrote {write_corpus(out, seed)} passages to {out}")


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
    from paretopo.app.cli_demo import bench, demo
    from paretopo.app.cli_stack import down, up

    app.command()(up)
    app.command()(down)
    app.command()(demo)
    app.command()(bench)


_register_stack_commands()


# ---- benchmarks: `paretopo data ...` and `paretopo eval` ---------------------------------------

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


@app.command("eval")
def eval_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="HF causal LM checkpoint directory.")],
    datasets: Annotated[list[str], typer.Option(
        "--dataset", "-d", help="Benchmark name (see `paretopo data list`; testbed-calc, "
        "testbed-kbqa) or file; repeat for several.")],
    limit: Annotated[int | None, typer.Option("--limit", help="First N questions each.")] = None,
    fmt: Annotated[str | None, typer.Option(
        "--format", help="Prompt template for non-testbed benchmarks: torl or search_r1 "
        "(default: by the benchmark's kind).")] = None,
    executor: Annotated[str | None, typer.Option(
        "--executor", help="Executor host:port; default: the running stack's, else start one.")
    ] = None,
    search: Annotated[str | None, typer.Option(
        "--search", help="Search host:port; default: start one over --search-index or a "
        "BM25 index of the benchmark's corpus.")] = None,
    search_index: Annotated[Path | None, typer.Option(
        "--search-index", help="Index directory (`paretopo index build`) to serve.")] = None,
    stack_home: Annotated[Path, typer.Option(
        "--stack-home", help="Where `paretopo up` records its stack.")] = Path("runs/stack"),
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
    out: Annotated[Path | None, typer.Option(
        "--out", help="Report directory (report.json, report.md); default runs/eval/<time>.")
    ] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Evaluate a checkpoint on benchmarks through the rollout agent loop and the tool
    services: EM and #Tool (the paper's metrics) and mean r_tool, per benchmark."""
    import time

    from tqdm import tqdm

    from paretopo.app.eval_services import ToolServices
    from paretopo.app.evaluation import EvalRun, EvalSettings, evaluate_items, markdown_table
    from paretopo.datasets import DatasetError
    from paretopo.jobs import SamplingParams
    from services.rollout.engine_factory import build_engine
    from services.rollout.settings import EngineSettings

    if engine not in ("torch", "vllm"):
        typer.echo(f"error: --engine must be torch or vllm, not {engine!r}", err=True)
        raise typer.Exit(2)
    from paretopo.tasks import get_task

    try:
        tasks = {d: get_task(d, template=fmt, data_dir=data_dir) for d in datasets}
        loaded = {d: task.items(task.eval_split, limit) for d, task in tasks.items()}
    except (DatasetError, ValueError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    out = out or Path("runs/eval") / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    shared_engine = build_engine(EngineSettings(kind=engine, model_path=str(checkpoint),
                                                device=device))
    reports = []
    with ToolServices(out, executor=executor, search=search, search_index=search_index,
                      stack_home=stack_home, data_dir=data_dir) as services:
        for name, items in loaded.items():
            task = tasks[name]
            tools = task.tools
            calls = max_tool_calls if max_tool_calls is not None else (
                task.tool_format.default_max_tool_calls)
            sampling = SamplingParams(
                temperature=temperature, max_new_tokens=max_new_tokens, seed=seed,
                max_completion_tokens=max_completion_tokens,
                max_tool_calls=4 if calls is None else calls)
            settings = EvalSettings(
                model_path=str(checkpoint), engine=engine, device=device,
                executor=services.executor() if "python" in tools else None,
                search=services.search(name) if "search" in tools else None,
                samples=samples, concurrency=concurrency, sampling=sampling)
            label = Path(name).stem
            with tqdm(total=len(items), desc=f"{label} ({task.template_name})",
                      unit="q") as bar:
                reports.append(evaluate_items(label, task, items, settings,
                                              on_done=lambda _: bar.update(1),
                                              engine=shared_engine))
            task.close()
    run = EvalRun(model=str(checkpoint), engine=engine, samples_per_question=samples,
                  reports=reports)
    table = markdown_table(reports)
    (out / "report.json").write_text(run.model_dump_json(indent=2))
    (out / "report.md").write_text(f"# `paretopo eval` of {checkpoint}\n\n{table}")
    typer.echo(table, nl=False)
    failed = sum(r.failed_questions for r in reports)
    if failed:
        typer.echo(f"{failed} question(s) could not be rolled out (see report.json)")
    typer.echo(f"report: {out / 'report.md'} and {out / 'report.json'}")


# The command's first name (issue 11 named it `eval`); kept for scripts that call it.
app.command("eval-bench", hidden=True)(eval_cmd)


# ---- `paretopo index build`: the search service's index builder, E5 defaults -------------------

index_app = typer.Typer(help="Search indexes the search service loads.")
app.add_typer(index_app, name="index")


@index_app.command("build")
def index_build(
    corpus: Annotated[Path, typer.Argument(help="JSONL corpus (id, title, text per line).")],
    out: Annotated[Path, typer.Option("--out", help="Index directory to write.")],
    model: Annotated[str, typer.Option(
        "--model", help="Embedding model (sentence-transformers name or path).")
    ] = "intfloat/e5-base-v2",
    passage_prefix: Annotated[str, typer.Option(help="Prepended to passages (E5).")] = (
        "passage: "),
    query_prefix: Annotated[str, typer.Option(
        help="Recorded in the index; the search service prepends it to queries (E5).")] = (
        "query: "),
    backend: Annotated[str, typer.Option("--backend", help="dense (FAISS) or bm25.")] = "dense",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Passages per batch.")
                          ] = 64,
    device: Annotated[str, typer.Option(help="auto (CUDA if any), cpu, cuda ...")] = "auto",
    limit: Annotated[int | None, typer.Option("--limit", help="First N passages only.")] = None,
    reuse: Annotated[bool, typer.Option(
        "--reuse", help="Keep an existing index of the same corpus, backend and model.")] = False,
    shard_rows: Annotated[int | None, typer.Option(
        "--shard-rows", min=1, help="dense: passages per fp16 embedding shard (the unit a "
        "killed build resumes from; rerun the same command to resume). Default: the "
        "builder's (262,144).")] = None,
    ann: Annotated[str, typer.Option(
        "--ann", help="dense: flat (exact over the fp16 shards), ivfpq or sq8 (compressed; "
        "docs/search.md has the measured recall).")] = "flat",
    nprobe: Annotated[int, typer.Option("--nprobe", min=1, help="ivfpq: lists per query.")
                      ] = 16,
    rerank: Annotated[int, typer.Option(
        "--rerank", min=0, help="ivfpq/sq8: re-score k*R candidates on the shards (0: off).")
    ] = 0,
) -> None:
    """Embed a corpus in batches (progress bar) and write the index the search service loads
    (`python -m services.tools.search --index-dir OUT`)."""
    from typing import get_args

    from tqdm import tqdm

    from paretopo.corpus import CorpusError
    from services.tools.search.ann import AnnKind, AnnSpec
    from services.tools.search.index import BuildOptions, build_index, is_current

    if backend not in ("dense", "bm25"):
        typer.echo(f"error: --backend must be dense or bm25, not {backend!r}", err=True)
        raise typer.Exit(2)
    if not corpus.is_file():
        typer.echo(f"error: corpus file not found: {corpus}", err=True)
        raise typer.Exit(2)
    if ann not in get_args(AnnKind):
        typer.echo(f"error: --ann must be one of {', '.join(get_args(AnnKind))}, not {ann!r}",
                   err=True)
        raise typer.Exit(2)
    options = BuildOptions(backend=backend, model=model, query_prefix=query_prefix,  # type: ignore[arg-type]
                           passage_prefix=passage_prefix, batch_size=batch_size,
                           device=device, limit=limit,
                           ann=AnnSpec(kind=ann, nprobe=nprobe, rerank=rerank),  # type: ignore[arg-type]
                           **({"shard_rows": shard_rows} if shard_rows else {}))
    if reuse and limit is None and is_current(out, corpus, options):
        typer.echo(f"{out} already indexes {corpus} with {model}; kept")
        return
    with tqdm(desc=f"{backend} index", unit="passage") as bar:
        def advance(n: int, total: int) -> None:
            bar.total = total
            bar.update(n)

        try:
            manifest = build_index(corpus, out, options, progress=advance)
        except (CorpusError, FileExistsError, ValueError, OSError) as err:
            bar.close()
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from None
    typer.echo(f"wrote {out}: {manifest.backend}, {manifest.model}, dim {manifest.dim}, "
               f"{manifest.num_passages} passages in {manifest.build_seconds:.1f}s")
