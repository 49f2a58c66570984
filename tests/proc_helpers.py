"""Process checks for the tests that stop services: is a pid alive, who is in a session, wait."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path


def process_state(pid: int) -> str | None:
    """The process state letter, or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def alive(pid: int) -> bool:
    # a zombie has exited; only its exit status waits to be collected
    return process_state(pid) not in (None, "Z")


def session_members(sid: int) -> list[int]:
    """The live processes of session `sid` (a service started with start_new_session)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[3]) == sid and fields[0] != "Z":
                    members.append(int(entry.name))
    return members


def wait_for(condition: Callable[[], bool], timeout: float, poll_s: float = 0.05) -> bool:
    """Poll `condition` until true or `timeout` seconds; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll_s)
    return condition()
