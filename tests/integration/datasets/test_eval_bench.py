"""`paretopo eval-bench` end to end: the rollout agent loop, a real executor over gRPC, graders.

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

from paretopo.cli import app
from paretopo.datasets import Record, TaskKind, shared_data_dir
from paretopo.datasets.evaluation import EvalSettings, evaluate_records, start_local_executor
from paretopo.jobs import SamplingParams
from paretopo.templates import TORL
from paretopo.testbed.model import ModelConfig, build_model, save_policy
from paretopo.testbed.tokenizer import build_tokenizer

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "unit" / "rollout"))
from scripted import ScriptedEngine  # noqa: E402  (the rollout tests' scripted model)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def executor(tmp_path_factory):
    proc, target = start_local_executor(tmp_path_factory.mktemp("executor"), workers=1)
    try:
        yield target
    finally:
        proc.stop()


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
    report = evaluate_records("t", records, TORL, settings, engine=engine)
    assert (report.n_questions, report.samples_per_question) == (2, 3)
    assert report.em == pytest.approx(0.5)  # 42 is right for t/1 only
    assert report.mean_tool_calls == pytest.approx(1.0)
    assert report.mean_r_tool == pytest.approx(0.5)  # n* = 1 on t/1: r_tool = 1 there
    first, second = report.items
    assert first.correct == [True] * 3 and second.correct == [False] * 3
    assert first.answers == ["42"] * 3 and first.tool_calls == [1, 1, 1]
    assert report.finish_reasons == {"eos": 6} and report.failed_questions == 0


def test_cli_on_math500_with_the_tiny_policy(tmp_path):
    if not (shared_data_dir() / "math/math500.jsonl").is_file():
        pytest.skip("shared data directory is absent (set PARETOPO_SHARED_DATA)")
    tokenizer = build_tokenizer()
    config = ModelConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=2048)
    model_dir = save_policy(build_model(tokenizer, config, seed=0), tokenizer, tmp_path / "v1")
    out = tmp_path / "report.json"
    # No --executor: the command starts one, and stops it.
    result = CliRunner().invoke(app, [
        "eval-bench", "--model", str(model_dir), "--dataset", "math500", "--limit", "2",
        "--samples", "2", "--temperature", "1.0", "--max-new-tokens", "24",
        "--max-completion-tokens", "48", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "math500" in result.output and "EM" in result.output and "#Tool" in result.output
    report = json.loads(out.read_text())
    assert report["benchmark"] == "math500" and report["template"] == "torl"
    assert report["n_questions"] == 2 and report["samples_per_question"] == 2
    assert 0.0 <= report["em"] <= 1.0 and report["mean_tool_calls"] >= 0
    assert sum(report["finish_reasons"].values()) == 4
    for item in report["items"]:
        assert item["id"].startswith("math500/") and len(item["answers"]) == 2
        assert len(item["correct"]) == len(item["tool_calls"]) == 2
    assert (tmp_path / "executor.log").exists()


def test_cli_unknown_dataset_fails_clearly(tmp_path):
    result = CliRunner().invoke(app, ["eval-bench", "--model", str(tmp_path),
                                      "--dataset", "nope"])
    assert result.exit_code == 1
    assert "unknown benchmark 'nope'" in result.output
