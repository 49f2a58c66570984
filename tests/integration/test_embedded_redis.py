"""The embedded Redis is real, durable across kill -9, restartable on the same data, and, when
its owner asks, never outlives the process that started it."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis


def test_acknowledged_write_survives_kill_9(redis_server) -> None:
    client = redis.Redis.from_url(redis_server.url)
    client.set("paretopo:test:key", "42")
    redis_server.kill()
    redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    assert client.get("paretopo:test:key") == b"42"


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"  # exited; only its status waits to be collected


def test_stop_with_parent_ends_the_server_when_its_owner_is_killed(tmp_path) -> None:
    """A service that owns its Redis leaves no orphan even when it is SIGKILLed."""
    owner = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\n"
         "from paretopo.redis_server import EmbeddedRedis\n"
         "r = EmbeddedRedis(sys.argv[1], stop_with_parent=True).start()\n"
         "print(r.pid, r.port, flush=True)\n"
         "time.sleep(600)\n", str(tmp_path / "redis")],
        stdout=subprocess.PIPE, text=True, start_new_session=True)
    pid = None
    try:
        pid, port = (int(v) for v in owner.stdout.readline().split())
        assert redis.Redis(port=port).ping()
        owner.kill()
        owner.wait()
        deadline = time.monotonic() + 10
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(pid), f"redis-server {pid} outlived the process that started it"
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
