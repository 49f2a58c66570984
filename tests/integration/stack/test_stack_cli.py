"""`paretopo up` / `paretopo down` in child processes: every service healthy, a second `up`
refused, nothing left running after `down` or Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from paretopo.app.stack import ServiceRecord, default_rollout_workers, is_running
from paretopo.healthcheck import grpc_serving, http_ok

PARETOPO = [sys.executable, "-c", "from paretopo.app.cli import app; app()"]
WORKERS = [f"rollout-{i}" for i in range(default_rollout_workers())]
SERVICES = {"redis", "archive", "executor", "search", *WORKERS}


def _cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PARETOPO, *args], capture_output=True, text=True, timeout=timeout,
                          check=False, env={**os.environ, "COLUMNS": "200"})


def _pids_alive(state: dict) -> list[str]:
    # Detached services are orphans that may stay zombies for a while: stopped all the same.
    return [s["name"] for s in state["services"] if is_running(ServiceRecord(**s))]


def _assert_healthy(state: dict) -> None:
    assert http_ok(f"{state['archive_http']}/readyz")
    assert grpc_serving(state["executor"]) and grpc_serving(state["search"])
    for rollout in (s for s in state["services"] if s["name"] in WORKERS):
        assert http_ok(f"{rollout['endpoints']['http']}/healthz")


@pytest.mark.slow
def test_up_detached_refuses_a_second_up_and_down_stops_everything(tmp_path: Path) -> None:
    home = tmp_path / "stack"
    first = _cli("up", "--home", str(home), "--free-ports", "--detach")
    assert first.returncode == 0, first.stdout + first.stderr
    state = json.loads((home / "stack.json").read_text())
    try:
        assert {s["name"] for s in state["services"]} == SERVICES
        assert oct((home / "stack.json").stat().st_mode & 0o777) == "0o600"
        _assert_healthy(state)
        assert "archive page: http://" in first.stdout

        second = _cli("up", "--home", str(home), "--free-ports", "--detach")
        assert second.returncode == 1 and "already running" in second.stdout
        _assert_healthy(state)  # the first stack is untouched
    finally:
        down = _cli("down", "--home", str(home))
    assert down.returncode == 0 and "stopped:" in down.stdout
    time.sleep(0.5)
    assert _pids_alive(state) == []
    assert "no running stack" in _cli("down", "--home", str(home)).stdout


@pytest.mark.slow
def test_ctrl_c_stops_every_service(tmp_path: Path) -> None:
    home = tmp_path / "stack"
    proc = subprocess.Popen([*PARETOPO, "up", "--home", str(home), "--free-ports"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in proc.stdout:
            if "Ctrl-C stops every service" in line:
                break
        state = json.loads((home / "stack.json").read_text())
        _assert_healthy(state)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "stopped every service" in out
    assert _pids_alive(state) == []
    assert not (home / "stack.json").exists()
