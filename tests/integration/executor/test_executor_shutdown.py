"""SIGTERM stops the executor promptly and leaves no sandboxed worker behind."""

from __future__ import annotations

import signal
import time

from services.tools.executor.pool import descendants


def test_sigterm_exits_promptly_and_ends_every_sandbox(own_executor):
    server = own_executor
    sandboxed = descendants(server.proc.pid)
    assert sandboxed, "the executor should have started its workers"
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=10) == 0
    assert time.monotonic() - started < 10
    time.sleep(0.3)
    assert [pid for pid in sandboxed if _running(pid)] == []


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
