"""The Python executor service object: validation, limits, result classification, metrics.

Model-written code runs in a warm pool of sandboxed fork-server workers (`pool.py`,
`zygote.py`); the sandbox mechanism is chosen in `sandbox.py` (bubblewrap namespaces, else a
loudly-announced rlimits-only fallback).

What is isolated (bwrap mechanism; `Describe` reports the mechanism in force):

- network: an empty network namespace, and seccomp refuses every non-``AF_UNIX`` socket;
- processes: own PID namespace (the service is invisible; the worker is PID 1 there, so
  ``kill(1, SIGKILL)`` is ignored); ``RLIMIT_NPROC`` per call (as a per-worker
  unprivileged uid when the service is root, where the kernel would not enforce it);
- files: a read-only minimal view (``/usr``, libraries, Python prefix, site-packages), no
  service files, size-capped private tmpfs ``/tmp`` and ``/dev/shm`` emptied before and after
  every call, ``RLIMIT_FSIZE``;
- environment: empty but for PATH/LANG/HOME/TMPDIR and thread-count variables;
- resources: wall time (SIGKILL of the snippet's session and of every process left in the
  namespace), CPU time (``RLIMIT_CPU``), address space (``RLIMIT_AS``), open files, stdout
  capped with a flag and a kill on gross floods, no core dumps;
- system calls: a seccomp deny list (ptrace, mount, namespaces, bpf, io_uring, keyrings, ...),
  every call that would change another process (limits, priority, scheduling, CPU set: so a
  call cannot change the worker that runs the next one), and the creation of System V IPC
  objects and POSIX message queues (so no call leaves IPC state or memory behind);
- memory: one memory cgroup per worker whose limit is set per call, so the call's processes
  share one limit (`cgroups.py`; where no cgroup can be had, the fallback is per-process
  ``RLIMIT_AS``, and `Describe` says so);
- fairness: per-client queues served round-robin, with idle workers reserved for clients that
  have nothing running (`pool.py`).

What is not isolated: the kernel itself (this is not a VM), host CPU beyond the per-call
rlimits, timing side channels between concurrent snippets.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import signal
import time
from collections.abc import Hashable
from dataclasses import dataclass, fields, replace

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from paretopo.errors import InvalidArgument
from services.tools.executor.cgroups import MemoryMode
from services.tools.executor.pool import WorkerDied, WorkerPool
from services.tools.executor.sandbox import GUARANTEES, NOT_GUARANTEED, SandboxPlan

log = logging.getLogger(__name__)

SECCOMP_GUARANTEE = (
    "seccomp deny-list filter: no exec, ptrace, mount, namespaces, ...; no call can change "
    "another process (prlimit, setpriority, sched_set*, ioprio_set only on the caller), so a "
    "call cannot change its worker; no System V IPC object or POSIX message queue can be "
    "created, so no IPC state or memory outlives a call")
NO_SECCOMP = ["without seccomp: a call can lower its worker's limits or priority "
              "(prlimit/setpriority on PID 1) and leave System V IPC objects for the next call"]


class ErrorKind(enum.StrEnum):
    """Why a snippet did not end normally (mirrors `paretopo.v1.ExecErrorKind`)."""

    NONE = "none"
    SYNTAX_ERROR = "syntax_error"
    EXCEPTION = "exception"
    NONZERO_EXIT = "nonzero_exit"
    TIMEOUT = "timeout"
    CPU_LIMIT = "cpu_limit"
    MEMORY_LIMIT = "memory_limit"
    OUTPUT_LIMIT = "output_limit"
    FILE_SIZE_LIMIT = "file_size_limit"
    KILLED_BY_SIGNAL = "killed_by_signal"
    WORKER_CRASHED = "worker_crashed"


@dataclass(frozen=True)
class Limits:
    """Per-call limits. Units: seconds, MiB, bytes, counts."""

    wall_s: float = 5.0
    cpu_s: float = 5.0
    memory_mb: int = 1024
    max_output_bytes: int = 16384
    max_processes: int = 32
    max_file_bytes: int = 16 * 1024 * 1024

    def merged(self, override: dict[str, float | int] | None) -> Limits:
        """These limits with the non-zero fields of `override` taking their place."""
        if not override:
            return self
        return replace(self, **{k: v for k, v in override.items() if v})


@dataclass
class ExecResult:
    """One snippet's outcome. `error` is NONE only for a clean run."""

    stdout: str = ""
    output_truncated: bool = False
    stderr_tail: str = ""
    exit_code: int = 0
    timed_out: bool = False
    memory_exceeded: bool = False
    killed: bool = False
    error: ErrorKind = ErrorKind.NONE
    error_message: str = ""
    duration_ms: float = 0.0
    stdout_bytes: int = 0

    @property
    def ok(self) -> bool:
        return self.error is ErrorKind.NONE


class Metrics:
    """Prometheus metrics of one executor instance (its own registry)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.calls = Counter("executor_calls", "Snippets executed", registry=r)
        self.rpcs = Counter("executor_rpcs", "RPCs served", ["method"], registry=r)
        self.errors = Counter("executor_errors", "Snippets that ended in an error, by kind",
                              ["kind"], registry=r)
        self.latency = Histogram(
            "executor_call_seconds", "End-to-end time of one snippet in the service",
            buckets=(.002, .004, .006, .008, .01, .015, .02, .03, .05, .1, .2, .5, 1, 2, 5, 10),
            registry=r)
        self.workers = Gauge("executor_workers_alive", "Warm sandbox workers alive", registry=r)
        self.respawns = Gauge("executor_worker_respawns", "Workers replaced so far", registry=r)
        self.setup_failures = Gauge(
            "executor_worker_setup_failures",
            "Calls whose sandbox set-up failed in the worker (each worker was replaced)",
            registry=r)
        self.memory_mode = Gauge("executor_memory_limit_mode",
                                 "1 for the memory-limit mode in force (cgroup-v2, cgroup-v1, "
                                 "or the per-process rlimit fallback)", ["mode"], registry=r)
        self.degraded = Gauge("executor_sandbox_degraded",
                              "1 when the strongest isolation mechanism is not in use",
                              ["mechanism"], registry=r)


def classify(raw: dict, limits: Limits) -> ExecResult:
    """Turn the zygote's raw report into an `ExecResult` with one error kind."""
    sig = raw["signal"]
    memory = raw["memory_error"] or raw.get("oom_killed", False) or (
        sig in (signal.SIGSEGV, signal.SIGABRT) and any(
            s in raw["stderr_tail"] for s in ("MemoryError", "Cannot allocate memory")))
    if raw["timed_out"]:
        kind, msg = ErrorKind.TIMEOUT, f"wall-time limit of {limits.wall_s:g}s reached"
    elif raw["output_flooded"]:
        kind, msg = ErrorKind.OUTPUT_LIMIT, (f"output flood: {raw['stdout_bytes']} bytes of "
                                             f"stdout, {raw.get('stderr_bytes', 0)} of stderr")
    elif sig == signal.SIGXCPU or (sig == signal.SIGKILL and not raw["killed"]
                                   and not raw.get("oom_killed")
                                   and raw["cpu_s"] >= 0.95 * math.ceil(limits.cpu_s)):
        # RLIMIT_CPU: SIGXCPU at the soft limit, SIGKILL at the hard one (handler ignored).
        kind, msg = ErrorKind.CPU_LIMIT, f"CPU-time limit of {limits.cpu_s:g}s reached"
    elif memory:
        kind, msg = ErrorKind.MEMORY_LIMIT, f"memory limit of {limits.memory_mb} MiB reached"
    elif sig == signal.SIGXFSZ:
        kind, msg = ErrorKind.FILE_SIZE_LIMIT, f"file larger than {limits.max_file_bytes} bytes"
    elif raw["syntax_error"]:
        kind, msg = ErrorKind.SYNTAX_ERROR, _last_line(raw["stderr_tail"]) or "SyntaxError"
    elif raw["exception"]:
        kind, msg = ErrorKind.EXCEPTION, _last_line(raw["stderr_tail"]) or raw["exception"]
    elif sig:
        kind, msg = ErrorKind.KILLED_BY_SIGNAL, f"killed by {signal.Signals(sig).name}"
    elif raw["exit_code"] != 0:
        kind, msg = ErrorKind.NONZERO_EXIT, f"exit status {raw['exit_code']}"
    else:
        kind, msg = ErrorKind.NONE, ""
    return ExecResult(
        stdout=raw["stdout"], output_truncated=raw["stdout_truncated"],
        stderr_tail=raw["stderr_tail"], exit_code=raw["exit_code"],
        timed_out=raw["timed_out"], memory_exceeded=memory, killed=raw["killed"],
        error=kind, error_message=msg[:500], duration_ms=raw["duration_s"] * 1000.0,
        stdout_bytes=raw["stdout_bytes"])


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


class ExecutorService:
    """Runs snippets on the pool within validated limits; the gRPC adapter calls this."""

    def __init__(self, pool: WorkerPool, *, defaults: Limits, maxima: Limits,
                 max_code_bytes: int = 256 * 1024, max_batch: int = 512,
                 max_open_files: int = 64, output_kill_factor: int = 64,
                 metrics: Metrics | None = None) -> None:
        for f in fields(Limits):
            if getattr(defaults, f.name) > getattr(maxima, f.name):
                raise ValueError(f"default {f.name} is above its maximum")
        self.pool = pool
        self.defaults, self.maxima = defaults, maxima
        self.max_code_bytes, self.max_batch = max_code_bytes, max_batch
        self.max_open_files = max_open_files
        self.output_kill_factor = output_kill_factor
        self.metrics = metrics or Metrics()
        m = self.metrics
        m.degraded.labels(pool.plan.mechanism.value).set(int(pool.plan.degraded))
        # Read from the pool when scraped, not set on every call; labelled children looked
        # up once: the per-call cost of metrics is a few counter increments.
        m.workers.set_function(lambda: pool.alive)
        m.respawns.set_function(lambda: pool.respawned)
        m.setup_failures.set_function(lambda: pool.setup_failures)
        self._rpcs = {name: m.rpcs.labels(name) for name in ("Execute", "ExecuteBatch")}
        self._errors = {kind: m.errors.labels(kind.value) for kind in ErrorKind}

    @property
    def plan(self) -> SandboxPlan:
        return self.pool.plan

    def validate(self, code: str | bytes, override: dict | None) -> tuple[str, Limits]:
        """Check one snippet; its code and effective limits, or InvalidArgument."""
        if isinstance(code, bytes):
            try:
                code = code.decode("utf-8")
            except UnicodeDecodeError as err:
                raise InvalidArgument(f"code is not valid UTF-8: {err}") from err
        if not code.strip():
            raise InvalidArgument("code is empty")
        size = len(code.encode("utf-8", "surrogatepass"))
        if size > self.max_code_bytes:
            raise InvalidArgument(f"code is {size} bytes; the limit is {self.max_code_bytes}")
        for name, value in (override or {}).items():
            # NaN passes every comparison below and ±inf is no limit: refuse both here,
            # before anything reaches a worker.
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise InvalidArgument(f"limit {name} is not a finite number ({value!r})")
            if value < 0:
                raise InvalidArgument(f"limit {name} is negative ({value})")
            if value > getattr(self.maxima, name):
                raise InvalidArgument(f"limit {name}={value} is above the server maximum "
                                      f"{getattr(self.maxima, name)}")
        return code, self.defaults.merged(override)

    async def execute(self, code: str | bytes, limits: dict | None = None,
                      client: Hashable = "") -> ExecResult:
        """Run one snippet for `client` (the fairness key: calls of different clients
        share the workers round-robin)."""
        self._rpcs["Execute"].inc()
        code, eff = self.validate(code, limits)
        return await self._run(code, eff, client)

    async def execute_batch(self, snippets: list[tuple[str | bytes, dict | None]],
                            client: Hashable = "") -> list[ExecResult]:
        """Run many snippets concurrently across the pool; results in input order.
        The whole batch is validated before anything runs. `client` as for `execute`."""
        self._rpcs["ExecuteBatch"].inc()
        if not snippets:
            raise InvalidArgument("the batch is empty")
        if len(snippets) > self.max_batch:
            raise InvalidArgument(f"{len(snippets)} snippets; the limit is {self.max_batch}")
        checked = []
        for i, (code, limits) in enumerate(snippets):
            try:
                checked.append(self.validate(code, limits))
            except InvalidArgument as err:
                raise InvalidArgument(f"snippet {i}: {err.message}") from err
        return list(await asyncio.gather(*(self._run(c, lim, client) for c, lim in checked)))

    async def _run(self, code: str, limits: Limits, client: Hashable) -> ExecResult:
        request = {"code": code, **vars(limits), "max_open_files": self.max_open_files,
                   "output_kill_factor": self.output_kill_factor}
        start = time.perf_counter()
        try:
            result = classify(await self.pool.run(request, limits.wall_s, client), limits)
        except WorkerDied as err:
            log.warning("worker lost during a call: %s", err)
            result = ExecResult(killed=True, exit_code=-int(signal.SIGKILL),
                                error=ErrorKind.WORKER_CRASHED,
                                error_message=f"sandbox worker lost: {err}"[:500],
                                duration_ms=(time.perf_counter() - start) * 1000.0)
        self.metrics.calls.inc()
        self.metrics.latency.observe(time.perf_counter() - start)
        if not result.ok:
            self._errors[result.error].inc()
        return result

    def publish_memory_mode(self) -> None:
        """Export the memory-limit mode (known once the pool has started)."""
        for mode in MemoryMode:
            self.metrics.memory_mode.labels(mode.value).set(
                int(mode is self.pool.cgroups.mode))

    def describe(self) -> dict:
        """Mechanism, guarantees, warnings and limits, for the Describe RPC and the logs."""
        plan, cgroups = self.plan, self.pool.cgroups
        return {
            "mechanism": plan.mechanism, "degraded": plan.degraded,
            "guarantees": GUARANTEES[plan.mechanism]
            + ([SECCOMP_GUARANTEE] if plan.seccomp_bpf else [])
            + ([cgroups.describe()] if cgroups.whole_call else []),
            "not_guaranteed": NOT_GUARANTEED[plan.mechanism]
            + ([] if cgroups.whole_call else [cgroups.describe()])
            + ([] if plan.seccomp_bpf else NO_SECCOMP),
            "warnings": list(plan.warnings)
            + ([] if cgroups.whole_call else [f"MEMORY LIMIT DEGRADED: {cgroups.describe()}"]),
            "memory_mode": cgroups.mode,
            "default_limits": self.defaults, "max_limits": self.maxima,
            "workers": self.pool.size, "max_code_bytes": self.max_code_bytes,
            "max_batch": self.max_batch, "seccomp": plan.seccomp_bpf is not None,
        }
