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


def start_ticks(pid: int) -> int | None:
    """When `pid` started (clock ticks since boot), or None when gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else int(fields[19])


def identities(pids: list[int]) -> set[tuple[int, int]]:
    """(pid, start time) of each live pid: a process, not a number the kernel may reuse (a busy
    machine's sandboxes fork hundreds of times a second, and pid_max is often 32768)."""
    return {(pid, ticks) for pid in pids if (ticks := start_ticks(pid)) is not None}


def still_running(processes: set[tuple[int, int]]) -> list[int]:
    """The pids of `processes` (from `identities`) that are still the same live process."""
    return sorted(pid for pid, ticks in processes if start_ticks(pid) == ticks)


def wait_for(condition: Callable[[], bool], timeout: float, poll_s: float = 0.05) -> bool:
    """Poll `condition` until true or `timeout` seconds; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll_s)
    return condition()
