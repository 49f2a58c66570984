"""Serving REST from several processes that share one listening socket.

One Python process runs uvicorn, gRPC and redis-py on one event loop, and under read load it
is CPU-bound on a single core. With `--http-workers N` the archive process binds the REST
socket and starts N - 1 more processes (`python -m services.archive.workers <fd>`) that
accept on the same socket; each has its own Redis connection pool and view cache, and the
version counter in Redis keeps every cache exact. The kernel hands each connection to
whichever process accepts it first, so a busy process takes fewer.

Workers receive their settings (tokens included) on stdin, never on the command line; they
exit when the archive process dies (`PR_SET_PDEATHSIG`), and the archive stops them on
SIGTERM or SIGINT and restarts one that dies while it serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Coroutine, Iterator
from typing import Any

import uvicorn

from paretopo.redis_server import die_with_parent_argv
from services.archive.settings import ArchiveSettings

log = logging.getLogger("services.archive")

#: How long a stopping REST process waits for requests in flight before it drops them: a
#: slow or stalled client must not keep a process alive after its archive was told to stop.
GRACEFUL_SHUTDOWN_S = 5.0


class HttpServer(uvicorn.Server):
    """uvicorn without its signal handling: its handlers re-raise the signal once it has
    stopped, which would kill the process before the embedded Redis, the gRPC server and the
    workers are stopped. The archive installs its own handlers and sets `should_exit`."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def http_server(app: object) -> HttpServer:
    # proxy_headers off: nothing here uses the client address, and its middleware ran on
    # every request
    return HttpServer(uvicorn.Config(app, log_level="warning", lifespan="off",
                                     proxy_headers=False,
                                     timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S))


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop where it is installed (it comes with uvicorn[standard]): its transports
    and loop are C, and under read load the plain asyncio loop's socket writes and
    callbacks were a large share of each request."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def bind_socket(host: str, port: int) -> socket.socket:
    """The REST listening socket, bound here so that worker processes can inherit it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose proto
    # is IPPROTO_TCP, and with Nagle on every response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise RuntimeError(f"cannot bind the REST port {host}:{port}: {err}") from err
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def quiet_gc() -> None:
    """Keep the objects that exist after start-up out of garbage collection.

    A full collection walks every tracked object (≈ 235k here: FastAPI, gRPC, pydantic,
    torch) and took up to 209 ms under read load, the whole p99 of a `GET /front`; frozen
    objects are skipped, so what is left to scan is what requests allocate.
    """
    gc.collect()
    gc.freeze()


def worker_settings_json(settings: ArchiveSettings, redis_url: str) -> str:
    data = settings.model_dump(mode="json")
    data["redis_url"] = redis_url
    for name in ("write_token", "read_token"):
        secret = getattr(settings, name)
        data[name] = secret.get_secret_value() if secret is not None else None
    return json.dumps(data)


class RestWorkers:
    """`count` extra REST processes on the archive's socket; restarted if one dies."""

    def __init__(self, count: int, sock: socket.socket, settings_json: str) -> None:
        self.count = count
        self.sock = sock
        self.settings_json = settings_json
        self.processes: list[subprocess.Popen[bytes]] = []
        self.stopping = False

    def _spawn(self) -> subprocess.Popen[bytes]:
        fd = self.sock.fileno()
        process = subprocess.Popen(
            [*die_with_parent_argv(), sys.executable, "-m", "services.archive.workers", str(fd)],
            stdin=subprocess.PIPE, pass_fds=(fd,))
        assert process.stdin is not None
        process.stdin.write(self.settings_json.encode())
        process.stdin.close()
        return process

    def start(self) -> None:
        self.processes = [self._spawn() for _ in range(self.count)]
        log.info("started %d more REST worker processes (pids %s)", self.count,
                 ", ".join(str(p.pid) for p in self.processes))

    async def watch(self, interval_s: float = 1.0) -> None:
        """Replace a worker that exits while the archive still serves."""
        while not self.stopping:
            await asyncio.sleep(interval_s)
            for i, process in enumerate(self.processes):
                if process.poll() is not None and not self.stopping:
                    log.error("REST worker %d exited with %s; starting another", process.pid,
                              process.returncode)
                    self.processes[i] = self._spawn()

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM every worker (they finish their requests), SIGKILL any that lingers."""
        self.stopping = True
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def _serve_worker(settings: ArchiveSettings, fd: int) -> None:
    from services.archive.changes import ChangeFeed
    from services.archive.http import serving_app
    from services.archive.service import ArchiveService
    from services.archive.store import ArchiveStore

    assert settings.redis_url is not None
    sock = socket.socket(fileno=fd)
    store = ArchiveStore.from_url(settings.redis_url, namespace=settings.namespace)
    changes = ChangeFeed.for_client(store.client, store.keys.any_run)
    if changes is not None:
        changes.start()
    secret = settings.write_token.get_secret_value() if settings.write_token else None
    reader = settings.read_token.get_secret_value() if settings.read_token else None
    http = http_server(serving_app(ArchiveService(store, changes), write_token=secret,
                                   read_token=reader, max_body_bytes=settings.max_body_bytes))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, http.handle_exit, sig, None)
    quiet_gc()
    try:
        await http.serve(sockets=[sock])
    finally:
        if changes is not None:
            await changes.close()
        await store.close()


def worker_main(argv: list[str] | None = None) -> None:
    """Entry of a worker: `python -m services.archive.workers <fd>`, settings JSON on stdin."""
    args = sys.argv[1:] if argv is None else argv
    settings = ArchiveSettings.model_validate(json.loads(sys.stdin.read()))
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s[worker]: %(message)s")
    run_loop(_serve_worker(settings, int(args[0])))
    # Everything is closed; skip the interpreter's teardown of ~235k frozen objects (torch,
    # gRPC, FastAPI), which kept a stopped worker alive ~0.3 s after its archive had died.
    logging.shutdown()
    os._exit(0)


if __name__ == "__main__":
    worker_main()
