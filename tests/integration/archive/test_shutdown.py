"""`python -m services.archive` without a Redis URL starts its own redis-server; however the
archive ends (SIGTERM, SIGINT, or SIGKILL), nothing of it may stay behind holding the port
or the data directory.

The archive picks its own ports (0) and the test reads them from its log: a port chosen
here and passed in can be taken by another process before the archive binds it."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.archive.conftest import HTTP_AUTH, TOKEN
from tests.proc_helpers import alive, session_members, wait_for

pytestmark = pytest.mark.slow


def _redis_pid(port: int) -> int:
    """The redis-server serving `port` (it renames itself `redis-server 127.0.0.1:<port>`)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                words = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().split()
                if (words and words[0].endswith("redis-server")
                        and f"127.0.0.1:{port}" in words and alive(int(entry.name))):
                    return int(entry.name)
    raise AssertionError(f"no redis-server process serves port {port}")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _rest_port(log_path: Path) -> int | None:
    match = re.search(r"REST and page on http://127\.0\.0\.1:(\d+)/", log_path.read_text())
    return int(match.group(1)) if match else None


#: Processes that stop within this long of their archive count as stopped with it (a REST
#: worker notices its parent's death by signal and finishes uvicorn's shutdown tick first).
STOP_S = 10


@pytest.mark.parametrize(("sig", "workers", "serve_s"), [
    (signal.SIGTERM, 1, 0), (signal.SIGINT, 1, 0), (signal.SIGKILL, 1, 0),
    (signal.SIGTERM, 3, 0), (signal.SIGINT, 3, 0), (signal.SIGKILL, 3, 0),
    # killed after serving a while: the workers' change feeds are live by then
    (signal.SIGKILL, 3, 5),
], ids=lambda v: (signal.Signals(v).name if isinstance(v, signal.Signals)
                  else f"{v}proc" if v in (1, 3) else f"after{v}s"))
def test_no_process_of_the_archive_outlives_it(tmp_path, sig, workers, serve_s):
    log_path = tmp_path / "archive.log"
    with open(log_path, "wb") as log:
        archive = subprocess.Popen(
            [sys.executable, "-m", "services.archive", "--grpc-port", "0",
             "--http-port", "0", "--redis-dir", str(tmp_path / "redis"),
             "--write-token", TOKEN] + (["--http-workers", str(workers)] if workers > 1 else []),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    redis_pid = None
    try:
        assert wait_for(lambda: _rest_port(log_path) is not None or archive.poll() is not None,
                     60), log_path.read_text()
        http_port = _rest_port(log_path)
        assert http_port is not None, log_path.read_text()
        base = f"http://127.0.0.1:{http_port}"

        def ready() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"{base}/readyz", timeout=1).status_code == 200
            return False

        assert wait_for(ready, 60), log_path.read_text()
        time.sleep(serve_s)
        # the embedded Redis is in use, not merely started
        r = httpx.post(f"{base}/api/v1/runs", json={"run_id": "stop"}, headers=HTTP_AUTH)
        assert r.status_code == 201, r.text
        match = re.search(r"redis://127\.0\.0\.1:(\d+)", log_path.read_text())
        assert match, log_path.read_text()
        redis_port = int(match.group(1))
        redis_pid = _redis_pid(redis_port)
        assert len(session_members(archive.pid)) == workers  # the archive and its workers

        os.kill(archive.pid, sig)  # the archive alone, as an orchestrator or a shell does
        code = archive.wait(timeout=30)
        if sig != signal.SIGKILL:
            assert code == 0, log_path.read_text()
        assert wait_for(lambda: not alive(redis_pid), STOP_S), \
            f"redis-server {redis_pid} outlived the archive:\n{log_path.read_text()}"
        assert wait_for(lambda: _port_free(redis_port), STOP_S)
        assert wait_for(lambda: session_members(archive.pid) == [], STOP_S), \
            f"{session_members(archive.pid)} outlived the archive:\n{log_path.read_text()}"
        assert _port_free(http_port)
    finally:
        if archive.poll() is None:
            os.killpg(archive.pid, signal.SIGKILL)
            archive.wait()
        if redis_pid is not None and alive(redis_pid):
            os.kill(redis_pid, signal.SIGKILL)
