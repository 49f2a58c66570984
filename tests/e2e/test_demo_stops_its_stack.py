"""`paretopo demo` owns the services it starts: however it ends (SIGTERM from `kill` or an
orchestrator, SIGKILL), none of them, nor anything they started, outlives it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys

import pytest

from paretopo.app.demo import DemoOptions, _ensure_stack
from paretopo.app.stack import STATE_FILE, _proc_start_ticks
from tests.proc_helpers import alive, identities, session_members, still_running, wait_for

pytestmark = pytest.mark.slow

PARETOPO = [sys.executable, "-c", "from paretopo.app.cli import app; app()"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_no_service_outlives_the_demo(tmp_path, tiny_policy, sig):
    home = tmp_path / "demo"
    state_path = home / "stack" / STATE_FILE
    with open(tmp_path / "demo.log", "wb") as log:
        demo = subprocess.Popen(
            [*PARETOPO, "demo", "--model", str(tiny_policy), "--steps", "500",
             "--eval-every", "1000", "--home", str(home)],
            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    services: list[dict] = []
    try:
        def training() -> bool:  # every service recorded, the last one (the worker) healthy
            nonlocal services
            with contextlib.suppress(OSError, ValueError, KeyError):
                services = json.loads(state_path.read_text())["services"]
            return any(s["name"].startswith("rollout") for s in services) and \
                b"step 1 " in (tmp_path / "demo.log").read_bytes()

        assert wait_for(training, 240), (tmp_path / "demo.log").read_text()[-3000:]
        assert all(alive(s["pid"]) for s in services)
        # every service and whatever it started (each runs in a session of its own)
        processes = identities([m for s in services for m in session_members(s["pid"])])
        os.kill(demo.pid, sig)
        demo.wait(timeout=60)
        assert wait_for(lambda: not still_running(processes), 60), \
            f"{still_running(processes)} outlived the demo:\n" \
            f"{(tmp_path / 'demo.log').read_text()[-3000:]}"
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
        for s in services:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(s["pid"], signal.SIGKILL)


def test_a_demo_refuses_a_running_stack_of_another_kbqa_world(tmp_path):
    # This process stands in for a running stack whose search service indexes world 0.
    home = tmp_path / "stack"
    home.mkdir()
    me = os.getpid()
    (home / STATE_FILE).write_text(json.dumps({
        "supervisor_pid": me, "redis_url": "redis://127.0.0.1:1/0", "archive_grpc": "x:1",
        "archive_http": "http://x:1", "executor": "x:2", "search": "x:3", "write_token": "t",
        "world_seed": 0, "services": [{"name": "search", "pid": me,
                                       "started": _proc_start_ticks(me), "endpoints": {},
                                       "log": "search.log"}]}))
    with pytest.raises(ValueError, match="world of seed 0, and this demo's seed is 1"):
        _ensure_stack(DemoOptions(task="kbqa", seed=1, stack_home=home))
    state, owned = _ensure_stack(DemoOptions(task="kbqa", seed=0, stack_home=home))
    assert state.world_seed == 0 and owned is None  # the same world: joined, not started
    state, owned = _ensure_stack(DemoOptions(task="calc", seed=1, stack_home=home))
    assert owned is None  # calc searches nothing
