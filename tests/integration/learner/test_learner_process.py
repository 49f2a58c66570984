"""`python -m services.learner` as a child process: resume after SIGKILL, and the one-line
errors of a wrong config, a missing model path and an unreachable archive."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import redis
from learner_stack import NAMESPACE, REPO, run_learner, write_config

from paretopo.netutil import free_port
from paretopo.process import ManagedProcess
from services.archive.keys import ArchiveKeys
from services.learner.checkpoint import latest_checkpoint, load_state
from services.learner.config import load_run_config
from services.learner.metrics import read_log

pytestmark = pytest.mark.slow


def _nstar(stack, run_id: str) -> dict[str, int]:
    client = redis.Redis.from_url(stack.redis.url)
    raw = client.hgetall(ArchiveKeys(NAMESPACE).nstar(run_id))
    return {k.decode(): int(v) for k, v in raw.items()}


def _history_steps(stack, run_id: str) -> list[int]:
    client = redis.Redis.from_url(stack.redis.url)
    return sorted(int(k) for k in client.hkeys(ArchiveKeys(NAMESPACE).history(run_id)))


def test_resume_after_sigkill(stack, tiny_policy, tmp_path) -> None:
    three = {"objectives": ["accuracy", "tool_efficiency", "length_efficiency"],
             "stage1": {"initial_weights": [0.5, 0.3, 0.2], "reference_point": [0, 0, 0]}}
    path = write_config(tmp_path / "run.yaml", stack.run_config(
        tmp_path, tiny_policy, run_id="resume", budget={"max_steps": 8}, checkpoint_every=2,
        max_staleness=1, eval={"every": 2, "at_start": True}, algorithm=three))
    config = load_run_config(path)
    learner = ManagedProcess("learner", [sys.executable, "-m", "services.learner",
                                         "--config", str(path)],
                             cwd=str(REPO), log_path=tmp_path / "learner.log")
    learner.start()
    try:
        def checkpointed() -> bool:
            ckpt = latest_checkpoint(config.checkpoint_dir)
            return ckpt is not None and load_state(ckpt).step >= 4
        learner.wait_until(checkpointed, timeout=180)
        time.sleep(0.3)  # land somewhere inside the next step
    finally:
        learner.kill()
    killed_at = load_state(latest_checkpoint(config.checkpoint_dir))
    nstar_before = _nstar(stack, "resume")

    result = run_learner(path, tmp_path / "learner2.log")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ended after step 8" in result.stdout

    records = read_log(config.metrics_log)
    assert [r["step"] for r in records] == list(range(1, 9))  # each step once, in order
    assert _history_steps(stack, "resume") == [0, 2, 4, 6, 8]
    final = load_state(latest_checkpoint(config.checkpoint_dir))
    assert final.step == 8 and final.policy_version > killed_at.policy_version
    nstar_after = _nstar(stack, "resume")
    assert all(nstar_after[p] <= n for p, n in nstar_before.items())  # n* never rose
    versions = [r["policy_version"] for r in records]
    assert versions == sorted(versions)


def _one_line_error(result) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_wrong_config_names_the_field(stack, tiny_policy, tmp_path) -> None:
    config = stack.run_config(tmp_path, tiny_policy, group_size=1)
    result = run_learner(write_config(tmp_path / "bad.yaml", config), tmp_path / "l.log")
    line = _one_line_error(result)
    assert result.returncode == 2 and "group_size" in line and "bad.yaml" in line


def test_unreadable_config_file(tmp_path) -> None:
    result = run_learner(tmp_path / "missing.yaml", tmp_path / "l.log")
    assert "missing.yaml" in _one_line_error(result)


def test_missing_model_path_says_how_to_make_one(stack, tmp_path) -> None:
    config = stack.run_config(tmp_path, tmp_path / "no-model")
    result = run_learner(write_config(tmp_path / "run.yaml", config), tmp_path / "l.log")
    line = _one_line_error(result)
    assert "no-model" in line and "paretopo sft --task calc --out" in line


def test_unreachable_archive(stack, tiny_policy, tmp_path) -> None:
    config = stack.run_config(tmp_path, tiny_policy, services={
        "archive": f"127.0.0.1:{free_port()}", "archive_timeout_s": 2})
    result = run_learner(write_config(tmp_path / "run.yaml", config), tmp_path / "l.log")
    line = _one_line_error(result)
    assert result.returncode == 3 and "cannot reach the archive" in line


def test_unreachable_redis(stack, tiny_policy, tmp_path) -> None:
    config = stack.run_config(tmp_path, tiny_policy, services={
        "redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    result = run_learner(write_config(tmp_path / "run.yaml", config), tmp_path / "l.log")
    assert "cannot reach Redis" in _one_line_error(result)


def test_dry_run_prints_the_resolved_config(stack, tiny_policy, tmp_path) -> None:
    path = write_config(tmp_path / "run.yaml", stack.run_config(tmp_path, tiny_policy))

    out = subprocess.run([sys.executable, "-m", "services.learner", "--config", str(path),
                          "--dry-run"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and json.loads(out.stdout)["group_size"] == 4
