"""Start, watch and stop child service processes (the local launcher and the tests use it).

A child runs in its own session, so stopping it (SIGTERM, then SIGKILL after a grace period)
reaches every process it started and nothing else.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from paretopo.redis_server import die_with_parent_argv


class ManagedProcess:
    """One child process with its output in `log_path`."""

    def __init__(self, name: str, args: Sequence[str], *, log_path: str | os.PathLike[str],
                 env: Mapping[str, str] | None = None, cwd: str | None = None,
                 stop_with_parent: bool = False) -> None:
        self.name = name
        # SIGTERM when the starting thread's process dies, even by SIGKILL (Linux
        # PR_SET_PDEATHSIG): for a parent that owns its children, not a detached launcher
        self.stop_with_parent = stop_with_parent
        self.args = list(args)
        self.log_path = Path(log_path)
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.popen: subprocess.Popen[bytes] | None = None

    @classmethod
    def python_module(cls, name: str, module: str, *args: str, **kwargs) -> ManagedProcess:
        return cls(name, [sys.executable, "-m", module, *args], **kwargs)

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            prefix = die_with_parent_argv() if self.stop_with_parent else []
            self.popen = subprocess.Popen([*prefix, *self.args], stdout=log,
                                          stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd,
                                          start_new_session=True)
        return self

    def wait_until(self, ready: Callable[[], bool], *, timeout: float = 30.0) -> None:
        """Poll `ready()` until true; fail with the log tail if the process dies or times out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
            try:
                if ready():
                    return
            except Exception:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, *, grace: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL it after `grace` seconds."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.popen.wait()
        self._signal_group(signal.SIGKILL)  # stragglers the child left in its session
        self.popen = None

    def kill(self) -> None:
        """SIGKILL at once: the crash case."""
        if self.popen is not None:
            self._signal_group(signal.SIGKILL)
            self.popen.wait()
            self.popen = None

    def _signal_group(self, sig: int) -> None:
        assert self.popen is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)
