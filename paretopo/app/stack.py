"""The whole system as local processes: `paretopo up` / `paretopo down` and the demo use it.

Each service runs as its own child process in its own session (so stopping one reaches every
process it started), with its log under `home/logs/`. The running stack is described by
`home/stack.json`; its presence with live processes is the lock that makes a second `up` say
"already running" instead of fighting over ports, and it is what `down` reads to stop a stack
started by another process.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from paretopo.healthcheck import grpc_serving, http_ok
from paretopo.netutil import free_port
from paretopo.process import ManagedProcess
from paretopo.redis_server import EmbeddedRedis

STATE_FILE = "stack.json"


def torch_threads(processes: int, cores: int | None = None) -> int:
    """Torch threads for each of `processes` computing processes sharing this machine: an
    equal share of its cores, at least one. Two threads each on 2 shared cores made a learner
    update 3.9x slower under load than one (issue 17), so never more than the share.
    """
    cores = cores or len(os.sched_getaffinity(0))
    return max(1, cores // max(1, processes))


def default_rollout_workers(cores: int | None = None) -> int:
    """Rollout workers of a local stack: two where the machine has two cores or more.

    One worker takes a training step's 8 groups at once, so the second serves mostly
    validation (96 prompts x 8 samples), which the learner waits for: on 2 cores a validation
    took 32-36 s instead of 64-70 s, and training steps as long (`BENCHMARKS.md`, "Two rollout
    workers").
    """
    return min(2, cores or len(os.sched_getaffinity(0)))


class StackConfig(BaseModel):
    """Where the local stack lives and listens. Ports 0 mean "pick a free one"."""

    model_config = ConfigDict(extra="forbid")

    home: Path = Field(Path("runs/stack"), description="Logs, Redis data, indexes, state file.")
    host: str = Field("127.0.0.1", description="Interface every service binds.")
    redis_url: str | None = Field(None, description="External Redis; unset: embedded server.")
    archive_grpc_port: int = Field(50051, ge=0, le=65535)
    archive_http_port: int = Field(8080, ge=0, le=65535)
    executor_port: int = Field(50061, ge=0, le=65535)
    executor_workers: int = Field(4, ge=1, le=64)
    search_port: int = Field(50071, ge=0, le=65535)
    rollout_workers: int = Field(default_factory=default_rollout_workers, ge=0, le=32,
                                 description="Worker processes; default two where there are "
                                 "two cores or more (`default_rollout_workers`).")
    rollout_http_port: int = Field(9101, ge=0, le=65535, description="Worker i uses port + i.")
    rollout_threads: int | None = Field(
        None, ge=1, le=64, description="Torch threads per worker; None: an equal share of "
        "the machine's cores between the workers and the learner (`torch_threads`).")
    world_seed: int = Field(0, description="Seed of the kbqa world whose corpus is indexed.")
    start_timeout_s: float = Field(120.0, gt=0)
    stop_with_parent: bool = Field(
        True, description="The services stop when the process that started them dies, even by "
        "SIGKILL (a demo, a bench, `paretopo up` in the foreground); False for `up --detach`.")


@dataclass
class ServiceRecord:
    """One running service as the state file records it."""

    name: str
    pid: int
    started: float  # process start time (clock ticks since boot): guards against pid reuse
    endpoints: dict[str, str]
    log: str


@dataclass
class StackState:
    supervisor_pid: int
    redis_url: str
    archive_grpc: str
    archive_http: str
    executor: str
    search: str
    write_token: str
    services: list[ServiceRecord] = field(default_factory=list)
    world_seed: int = 0  # the kbqa world the search service indexes

    @property
    def page(self) -> str:
        return f"{self.archive_http}/"


class StackRunning(RuntimeError):
    """A stack described by the state file is already up."""


def _proc_start_ticks(pid: int) -> float | None:
    """The start time of a live `pid` (None when gone or a zombie), to tell reused pids apart.

    A detached stack's processes are orphans; whoever adopts them may reap them late, and a
    zombie has already stopped.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else float(fields[19])


def is_running(record: ServiceRecord) -> bool:
    """Whether the recorded process still runs (not gone, not a zombie, not a reused pid)."""
    return _proc_start_ticks(record.pid) == record.started


def read_state(home: Path) -> StackState | None:
    """The recorded stack, or None when there is none (or the file is unreadable)."""
    try:
        raw = json.loads((home / STATE_FILE).read_text())
        services = [ServiceRecord(**s) for s in raw.pop("services")]
        return StackState(**raw, services=services)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def running_stack(home: Path) -> StackState | None:
    """The recorded stack when at least one of its processes still runs."""
    state = read_state(home)
    if state is not None and any(is_running(s) for s in state.services):
        return state
    return None


def stop_recorded(home: Path, *, grace_s: float = 10.0) -> list[str]:
    """Stop every live process of the recorded stack (SIGTERM, SIGKILL after `grace_s`)."""
    state = read_state(home)
    if state is None:
        return []
    live = [s for s in reversed(state.services) if is_running(s)]
    for s in live:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(s.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(is_running(s) for s in live):
        time.sleep(0.1)
    for s in live:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(s.pid, signal.SIGKILL)
    (home / STATE_FILE).unlink(missing_ok=True)
    return [s.name for s in live]


class LocalStack:
    """Start every service, wait for their health checks, stop them all."""

    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig()
        self.home = self.config.home.resolve()
        self._redis: EmbeddedRedis | None = None
        self._procs: list[tuple[ManagedProcess, dict[str, str]]] = []
        self.state: StackState | None = None

    def start(self, on_ready: Callable[[str], None] = lambda name: None) -> StackState:
        """Bring the stack up; on any failure stop what started and raise with the log tail."""
        if (other := running_stack(self.home)) is not None:
            raise StackRunning(
                f"a stack is already running (supervisor pid {other.supervisor_pid}, archive "
                f"{other.archive_http}); use it, or stop it with `paretopo down`"
            )
        self.home.mkdir(parents=True, exist_ok=True)
        try:
            self._start_all(on_ready)
        except BaseException:
            self.stop()
            raise
        return self.state

    def stop(self) -> None:
        for proc, _ in reversed(self._procs):
            proc.stop()
        self._procs.clear()
        if self._redis is not None:
            self._redis.stop()
            self._redis = None
        if self.state is not None and read_state(self.home) == self.state:
            (self.home / STATE_FILE).unlink(missing_ok=True)
        self.state = None

    def exited(self) -> list[ManagedProcess]:
        """Services that have stopped running on their own."""
        return [proc for proc, _ in self._procs if not proc.alive()]

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals -------------------------------------------------------------------------

    def _port(self, wanted: int) -> int:
        return wanted or free_port(self.config.host)

    def _start_all(self, on_ready: Callable[[str], None]) -> None:
        cfg, host = self.config, self.config.host
        redis_url = cfg.redis_url or self._start_redis()
        on_ready("redis")
        token = secrets.token_urlsafe(24)
        grpc_port, http_port = self._port(cfg.archive_grpc_port), self._port(cfg.archive_http_port)
        exec_port, search_port = self._port(cfg.executor_port), self._port(cfg.search_port)
        self.state = StackState(
            supervisor_pid=os.getpid(), redis_url=redis_url,
            archive_grpc=f"{host}:{grpc_port}", archive_http=f"http://{host}:{http_port}",
            executor=f"{host}:{exec_port}", search=f"{host}:{search_port}", write_token=token,
            world_seed=cfg.world_seed,
        )
        if self._redis is not None:
            self._record(self._redis.process.pid, "redis", {"url": redis_url}, "redis/redis.log")
        index_dir = self._search_index()
        self._launch(
            "archive", "services.archive", [],
            {"PARETOPO_ARCHIVE_HOST": host, "PARETOPO_ARCHIVE_GRPC_PORT": str(grpc_port),
             "PARETOPO_ARCHIVE_HTTP_PORT": str(http_port),
             "PARETOPO_ARCHIVE_REDIS_URL": redis_url, "PARETOPO_ARCHIVE_WRITE_TOKEN": token},
            lambda: http_ok(f"{self.state.archive_http}/readyz"),
            {"grpc": self.state.archive_grpc, "http": self.state.archive_http},
        )
        on_ready("archive")
        self._launch(
            "executor", "services.tools.executor",
            ["--host", host, "--port", str(exec_port), "--workers", str(cfg.executor_workers)], {},
            lambda: grpc_serving(self.state.executor), {"grpc": self.state.executor},
        )
        on_ready("executor")
        self._launch(
            "search", "services.tools.search",
            ["--host", host, "--port", str(search_port), "--index-dir", str(index_dir)], {},
            lambda: grpc_serving(self.state.search), {"grpc": self.state.search},
        )
        on_ready("search")
        for i in range(cfg.rollout_workers):
            port = self._port(cfg.rollout_http_port + i if cfg.rollout_http_port else 0)
            self._launch(
                f"rollout-{i}", "services.rollout", [],
                {"PARETOPO_ROLLOUT_REDIS_URL": redis_url,
                 "PARETOPO_ROLLOUT_EXECUTOR": self.state.executor,
                 "PARETOPO_ROLLOUT_SEARCH": self.state.search,
                 "PARETOPO_ROLLOUT_ENGINE": "torch", "PARETOPO_ROLLOUT_DEVICE": "cpu",
                 "PARETOPO_ROLLOUT_WORKER_NAME": f"local-{i}",
                 "PARETOPO_ROLLOUT_HTTP_PORT": str(port),
                 "PARETOPO_ROLLOUT_THREADS": str(cfg.rollout_threads or torch_threads(
                     cfg.rollout_workers + 1))},
                lambda port=port: http_ok(f"http://{host}:{port}/readyz"),
                {"http": f"http://{host}:{port}"},
            )
            on_ready(f"rollout-{i}")
        self._write_state()

    def _start_redis(self) -> str:
        self._redis = EmbeddedRedis(self.home / "redis",
                                    stop_with_parent=self.config.stop_with_parent).start()
        return self._redis.url

    def _search_index(self) -> Path:
        """BM25 index of the testbed kbqa corpus (built once per world seed, then reused)."""
        from paretopo.testbed.kbqa import write_corpus
        from services.tools.search.index import BuildOptions, build_index, is_current

        corpus = self.home / f"kbqa-corpus-seed{self.config.world_seed}.jsonl"
        write_corpus(corpus, self.config.world_seed)
        out, options = self.home / f"search-index-seed{self.config.world_seed}", BuildOptions()
        if not is_current(out, corpus, options):
            build_index(corpus, out, options)
        return out

    def _launch(self, name: str, module: str, args: list[str], env: dict[str, str],
                ready: Callable[[], bool], endpoints: dict[str, str]) -> None:
        log = self.home / "logs" / f"{name}.log"
        proc = ManagedProcess.python_module(name, module, *args, log_path=log, env=env,
                                            stop_with_parent=self.config.stop_with_parent)
        self._procs.append((proc.start(), endpoints))
        self._record(proc.pid, name, endpoints, f"logs/{name}.log")
        self._write_state()  # recorded before it is healthy, so `down` can reach it meanwhile
        proc.wait_until(ready, timeout=self.config.start_timeout_s)

    def _record(self, pid: int, name: str, endpoints: dict[str, str], log: str) -> None:
        started = _proc_start_ticks(pid) or 0.0
        self.state.services.append(ServiceRecord(name, pid, started, endpoints,
                                                 str(self.home / log)))

    def _write_state(self) -> None:
        path = self.home / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self.state), indent=2))
        os.chmod(tmp, 0o600)  # it holds the archive's write token
        os.replace(tmp, path)
