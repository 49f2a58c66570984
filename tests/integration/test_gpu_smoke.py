"""`benchmarks/gpu_smoke.py` on CPU with the tiny model: the script the lent GPU runs cannot rot.

One subprocess run as CI would do it (`--device cpu --tiny`); every phase must report, with the
fields the GPU run's results are read from."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PHASES = ("env", "model", "cache_vs_recompute", "engine", "learner_step", "memory_probe",
          "deepspeed")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("smoke") / "smoke.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_smoke.py"), "--device", "cpu", "--tiny",
         "--threads", "1", "--out", str(out)],
        # ~20 s without DeepSpeed; where it is installed its first use JIT-builds an op (minutes).
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert out.is_file(), proc.stderr[-3000:]
    data = json.loads(out.read_text())
    data["returncode"], data["stderr"] = proc.returncode, proc.stderr[-3000:]
    return data


def test_every_phase_reports_and_the_run_passes(report):
    assert report["finished"] is True
    assert tuple(report["phases"]) == PHASES
    failed = {n: p.get("error", p["status"]) for n, p in report["phases"].items()
              if p["status"].startswith("failed")}
    assert not failed, (failed, report["stderr"])
    assert report["returncode"] == 0


def test_env_and_model(report):
    env, model = report["phases"]["env"], report["phases"]["model"]
    assert env["torch"] and env["transformers"] and env["python"]
    assert env["cache_kwarg"] in ("cache", "past_key_values")
    assert model["parameters"] > 0 and model["shapes"]["num_hidden_layers"] == 1


def test_cached_decode_matches_recompute(report):
    phase = report["phases"]["cache_vs_recompute"]
    assert phase["float32"]["max_abs_logprob_diff"] <= 1e-4
    assert phase["float32"]["argmax_agreement"] == 1.0


def test_engine_throughput_at_three_batch_sizes_and_a_reload(report):
    phase = report["phases"]["engine"]
    assert set(phase["batches"]) == {"1", "16", "64"}
    for b in phase["batches"].values():
        assert b["tokens"] > 0 and b["tokens_per_s"] > 0
        assert sum(b["finish"].values()) > 0
    assert phase["reload"]["version"] == 2
    assert phase["checks"]["seeded_tokens_same_after_reload"] is True


def test_learner_step_moves_finite(report):
    phase = report["phases"]["learner_step"]
    assert math.isfinite(phase["update_stats"]["loss"])
    assert phase["max_weight_change"] > 0 and phase["update_tokens_per_s"] > 0
    assert phase["peak_mib"] > 0


def test_deepspeed_runs_or_says_it_is_not_installed(report):
    phase = report["phases"]["deepspeed"]
    if importlib.util.find_spec("deepspeed") is None:
        assert phase["status"] == "skipped: deepspeed not installed"
    else:
        assert phase["status"] == "ok", phase
        assert phase["max_diff_after_restore"] == 0.0


def test_memory_probe(report):
    phase = report["phases"]["memory_probe"]
    assert phase["oom"] is False and phase["peak_mib"] > 0
    assert (phase["micro_batch"], phase["tokens_per_row"]) == (2, 128)


def test_a_failing_phase_is_recorded_and_the_others_still_run(tmp_path):
    # --workdir on a file: the model cannot be saved, so every phase after it fails with a
    # reason, and the JSON is still complete.
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    out = tmp_path / "smoke.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_smoke.py"), "--device", "cpu", "--tiny",
         "--threads", "1", "--workdir", str(blocker), "--phases", "env,engine", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    data = json.loads(out.read_text())
    assert proc.returncode == 1 and data["finished"] is True
    assert data["phases"]["env"]["status"] == "ok"
    assert data["phases"]["model"]["status"] == "failed" and data["phases"]["model"]["error"]
    assert data["phases"]["engine"]["error"] == "no model: the model phase failed"
