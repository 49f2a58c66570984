"""The `paretopo` console script end to end, in child processes: SFT a tiny policy, evaluate
it with real tools, print the ideal point, export the corpus."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PARETOPO = [sys.executable, "-c", "from paretopo.app.cli import app; app()"]


def _run(args: list[str], cwd: Path, timeout: float = 400) -> str:
    proc = subprocess.run(
        [*PARETOPO, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _json_tail(stdout: str) -> dict:
    return json.loads(stdout[stdout.index("{\n") :])


@pytest.mark.slow
def test_sft_then_eval_with_real_tools(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(
        "task: kbqa\n"
        "demos: {n_demos: 64}\n"
        "optim: {batch_size: 8, max_steps: 6, warmup_steps: 2, max_minutes: 3}\n"
        "model: {hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1,\n"
        "        num_attention_heads: 2, num_key_value_heads: 1}\n"
    )
    ckpt = tmp_path / "ckpt"
    out = _run(["sft", "--task", "kbqa", "--config", str(config), "--out", str(ckpt)], tmp_path)
    assert "after 6 steps" in out
    assert (ckpt / "model.safetensors").is_file() and (ckpt / "tokenizer.json").is_file()

    def evaluate(name: str) -> dict:
        return _json_tail(_run(["testbed", "eval", str(ckpt), "--task", "kbqa", "--n", "6",
                                "--samples", "3", "--out", str(tmp_path / name)], tmp_path))

    report = evaluate("first")
    assert (report["n"], report["samples"], report["temperature"]) == (6, 3, 1.0)
    assert 0.0 <= report["em"] <= 1.0 and 0.0 <= report["mean_calls"] <= 4.0
    assert set(report["by_difficulty"]) <= {"known", "one_hop", "two_hop_partial", "two_hop"}
    assert report["needs_tool"]["n"] == sum(
        1 for i in json.loads((tmp_path / "first" / "report.json").read_text())["items"]
        if i["min_calls"])
    # sampled, seeded per (question, sample): the same checkpoint evaluates the same twice
    assert evaluate("second") == report
    ideal = _json_tail(_run(["testbed", "ideal", "--task", "kbqa", "--n", "6"], tmp_path))
    assert report["ideal"]["mean_calls"] == pytest.approx(ideal["mean_calls"])
    assert report["distance"]["em_gap"] == pytest.approx(1.0 - report["em"])


def test_dry_run_prints_the_resolved_config(tmp_path):
    out = _run(["sft", "--task", "calc", "--steps", "7", "--dry-run"], Path(__file__).parents[3])
    cfg = json.loads(out)
    assert cfg["task"] == "calc" and cfg["optim"]["max_steps"] == 7



def test_a_config_file_keeps_its_task_and_a_contradicting_task_is_refused(tmp_path):
    repo = Path(__file__).parents[3]
    kbqa = repo / "configs" / "testbed" / "sft_kbqa.yaml"
    assert json.loads(_run(["sft", "--config", str(kbqa), "--dry-run"], repo))["task"] == "kbqa"
    proc = subprocess.run([*PARETOPO, "sft", "--task", "calc", "--config", str(kbqa), "--dry-run"],
                          cwd=repo, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode != 0 and "contradicts task: kbqa" in proc.stdout + proc.stderr

def test_corpus_and_items_export(tmp_path):
    _run(["testbed", "corpus", str(tmp_path / "corpus.jsonl")], tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "corpus.jsonl").read_text().splitlines()]
    assert rows and all(set(r) == {"id", "title", "text"} for r in rows)
    _run(
        [
            "testbed",
            "items",
            str(tmp_path / "val.jsonl"),
            "--task",
            "calc",
            "--split",
            "validation",
            "--n",
            "20",
        ],
        tmp_path,
    )
    items = [json.loads(line) for line in (tmp_path / "val.jsonl").read_text().splitlines()]
    assert len(items) == 20 and {"id", "question", "answer", "min_calls"} <= set(items[0])
