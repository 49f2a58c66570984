"""`paretopo eval` end to end: the rollout agent loop, a real executor over gRPC, graders.

The tiny testbed policy scores near zero on MATH500; these tests check the pipeline, the
counts and the report, not accuracy. A scripted model (a stand-in for the *model* only) checks
that tool calls are executed by the real executor and counted.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from paretopo.app.cli import app
from paretopo.app.evaluation import EvalSettings, evaluate_items, start_local_executor
from paretopo.datasets import Record, TaskKind, shared_data_dir
from paretopo.hf_policy import save_policy
from paretopo.jobs import SamplingParams
from paretopo.tasks import BenchmarkTask, get_task
from paretopo.testbed.model import ModelConfig, build_model
from paretopo.testbed.tokenizer import build_tokenizer

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "unit" / "rollout"))
from scripted import ScriptedEngine  # noqa: E402  (the rollout tests' scripted model)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def executor_server(tmp_path_factory):
    proc, target = start_local_executor(tmp_path_factory.mktemp("executor"), workers=1)
    try:
        yield proc, target
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def executor(executor_server):
    return executor_server[1]


def test_tool_calls_are_executed_counted_and_graded(executor):
    records = [
        Record(id="t/1", question="What is 6 times 7?", golds=["42"], kind=TaskKind.MATH,
               source="t"),
        Record(id="t/2", question="What is 3 + 4?", golds=["7"], kind=TaskKind.MATH, source="t"),
    ]
    engine = ScriptedEngine("", ["Compute it.\n```python\nprint(6 * 7)\n```\n```output",
                                 "So the answer is \\boxed{42}.<eos>"],
                            call_stops=("```output",))
    settings = EvalSettings(model_path="scripted", executor=executor, samples=3,
                            sampling=SamplingParams(max_tool_calls=1))
    task = BenchmarkTask("t", template="torl")
    try:
        report = evaluate_items("t", task, records, settings, engine=engine)
    finally:
        task.close()
    assert (report.n_questions, report.samples_per_question) == (2, 3)
    assert report.em == pytest.approx(0.5)  # 42 is right for t/1 only
    assert report.mean_tool_calls == pytest.approx(1.0)
    assert report.mean_r_tool == pytest.approx(0.5)  # n* = 1 on t/1: r_tool = 1 there
    first, second = report.items
    assert first.correct == [True] * 3 and second.correct == [False] * 3
    assert first.answers == ["42"] * 3 and first.tool_calls == [1, 1, 1]
    assert report.finish_reasons == {"eos": 6} and report.failed_questions == 0


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory) -> Path:
    tokenizer = build_tokenizer()
    config = ModelConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=2048)
    return save_policy(build_model(tokenizer, config, seed=0), tokenizer,
                       tmp_path_factory.mktemp("policy") / "v1")


SHORT = ["--samples", "2", "--temperature", "1.0", "--max-new-tokens", "24",
         "--max-completion-tokens", "48"]


def _needs_shared_data(*paths: str) -> None:
    for path in paths:
        if not (shared_data_dir() / path).is_file():
            pytest.skip("shared data directory is absent (set PARETOPO_SHARED_DATA)")


def test_cli_on_math500_and_testbed_calc_with_the_tiny_policy(tiny_policy, tmp_path):
    _needs_shared_data("math/math500.jsonl")
    out = tmp_path / "eval"
    # No --executor and no stack: the command starts one executor for both, and stops it.
    result = CliRunner().invoke(app, [
        "eval", str(tiny_policy), "--dataset", "math500", "--dataset", "testbed-calc",
        "--limit", "2", "--stack-home", str(tmp_path / "no-stack"), "--out", str(out), *SHORT])
    assert result.exit_code == 0, result.output
    assert "| math500 | 2 | 2 |" in result.output and "| testbed-calc | 2 | 2 |" in result.output
    assert "| Avg. |" in result.output and "#Tool" in result.output
    assert (out / "report.md").read_text().count("\n| ") == 4  # header rule, 2 rows, Avg.
    run = json.loads((out / "report.json").read_text())
    assert run["model"] == str(tiny_policy) and run["samples_per_question"] == 2
    math500, calc = run["reports"]
    assert (math500["benchmark"], math500["template"]) == ("math500", "torl")
    assert (calc["benchmark"], calc["template"]) == ("testbed-calc", "testbed-calc")
    calc_ids = {i.id for i in get_task("calc").items("validation", 2)}  # the learner's ids
    for report, is_own in ((math500, lambda i: i.startswith("math500/")),
                           (calc, calc_ids.__contains__)):
        assert report["n_questions"] == 2 and report["samples_per_question"] == 2
        assert 0.0 <= report["em"] <= 1.0 and report["mean_tool_calls"] >= 0
        assert sum(report["finish_reasons"].values()) == 4
        for item in report["items"]:
            assert is_own(item["id"]) and len(item["answers"]) == 2
            assert len(item["correct"]) == len(item["tool_calls"]) == 2
    assert set(calc["by_difficulty"]) <= {"easy", "hard", "multistep"}
    assert math500["by_difficulty"] == {} and math500["needs_tool"] is None
    assert (out / "executor.log").exists()


def test_cli_qa_benchmarks_start_search_over_their_corpus(tiny_policy, tmp_path):
    """testbed-kbqa is served by the testbed corpus, NQ by the Wikipedia-2018 sample (BM25)."""
    _needs_shared_data("qa/nq_test_sample1000.jsonl", "qa/wiki18_passages_sample.jsonl")
    out = tmp_path / "eval"
    result = CliRunner().invoke(app, [
        "eval", str(tiny_policy), "-d", "testbed-kbqa", "-d", "nq", "--limit", "2",
        "--stack-home", str(tmp_path / "no-stack"), "--out", str(out), *SHORT])
    assert result.exit_code == 0, result.output
    kbqa, nq = json.loads((out / "report.json").read_text())["reports"]
    assert (kbqa["template"], nq["template"]) == ("testbed-kbqa", "search_r1")
    assert kbqa["n_questions"] == nq["n_questions"] == 2
    assert (out / "search-bm25-kbqa-corpus-seed0.log").exists()
    assert (out / "search-bm25-wiki18_passages_sample.log").exists()
    assert not (out / "executor.log").exists()  # no python tool in either format


def test_cli_uses_the_running_stacks_executor(tiny_policy, executor_server, tmp_path):
    """A stack recorded by `paretopo up` (here: its state file naming a live executor)."""
    from paretopo.app.stack import STATE_FILE, _proc_start_ticks

    proc, executor = executor_server
    pid = proc.pid
    home = tmp_path / "stack"
    home.mkdir()
    (home / STATE_FILE).write_text(json.dumps({
        "supervisor_pid": pid, "redis_url": "redis://127.0.0.1:1/0", "archive_grpc": "-",
        "archive_http": "-", "executor": executor, "search": "127.0.0.1:1", "write_token": "t",
        "services": [{"name": "executor", "pid": pid, "started": _proc_start_ticks(pid),
                      "endpoints": {"grpc": executor}, "log": "executor.log"}]}))
    out = tmp_path / "eval"
    result = CliRunner().invoke(app, [
        "eval", str(tiny_policy), "-d", "testbed-calc", "--limit", "1", "--stack-home",
        str(home), "--out", str(out), *SHORT])
    assert result.exit_code == 0, result.output
    assert not (out / "executor.log").exists()  # none started: the stack's was used


def test_cli_unknown_dataset_fails_clearly(tmp_path):
    result = CliRunner().invoke(app, ["eval", str(tmp_path), "--dataset", "nope"])
    assert result.exit_code == 1
    assert "unknown benchmark 'nope'" in result.output
    assert "testbed-calc" in result.output


def test_eval_bench_is_a_hidden_alias(tmp_path):
    result = CliRunner().invoke(app, ["eval-bench", str(tmp_path), "--dataset", "nope"])
    assert result.exit_code == 1 and "unknown benchmark 'nope'" in result.output
    assert "eval-bench" not in CliRunner().invoke(app, ["--help"]).output
