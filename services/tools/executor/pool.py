"""A warm pool of sandboxed zygote workers, with respawn of any worker a snippet kills.

Each worker is one long-lived sandbox (see `sandbox.py`) running `zygote.py`; a call is one
JSON frame out and one back over its stdin/stdout. A worker that dies, answers garbage,
overruns its call's wall time by more than a grace period, or could not set the sandbox up for
a call is killed (its whole process group: the sandbox dies with it) and replaced in the
background; the call gets a WORKER_CRASHED result instead of an exception.

Calls wait while every worker is busy, in one queue per client, served round-robin; and the
last `reserved` idle workers go only to a client that has no call running. So one client's
long batch can hold at most ``size - reserved`` workers, and another client's call starts as
soon as a worker is free instead of after the whole batch.

When the service is root, the pool leases its worker uids (`sandbox.lease_uids`), so that two
executors on one host never share one; where a memory cgroup can be had (`cgroups.py`), each
worker gets its own, which limits each call as a whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import struct
from collections import Counter, OrderedDict, deque
from collections.abc import Hashable

from services.tools.executor.cgroups import CgroupRoot, MemoryMode, WorkerCgroup, probe
from services.tools.executor.sandbox import SandboxPlan, UidLease, lease_uids, worker_command

log = logging.getLogger(__name__)

FRAME_LIMIT = 256 * 1024 * 1024
#: How long `Worker.kill` waits for the killed worker to be reaped before giving up on it.
KILL_WAIT_S = 5.0


class WorkerDied(Exception):
    """The worker is gone or unusable; the message says what happened."""


class WorkerSetupFailed(WorkerDied):
    """The worker could not set the sandbox up for a call (the snippet never ran): it is
    suspect, e.g. something changed it, and is replaced rather than kept alive-but-broken."""


class Worker:
    """One sandboxed zygote process and the pipe protocol to it."""

    def __init__(self, plan: SandboxPlan, index: int,
                 cgroups: CgroupRoot | None = None) -> None:
        self.plan = plan
        self.index = index
        self.cgroups = cgroups
        self.cgroup: WorkerCgroup | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self.info: dict = {}
        self.calls = 0
        self._scratch: str | None = None
        self._drop_uid: int | None = None
        self._stderr_task: asyncio.Task | None = None

    async def start(self, timeout_s: float) -> None:
        try:
            self.cgroup = self.cgroups.worker(f"w{self.index}") if self.cgroups else None
        except OSError as err:
            raise WorkerDied(f"worker {self.index}: no cgroup: {err}") from err
        cmd = worker_command(self.plan, self.index,
                             self.cgroup.zygote_config() if self.cgroup else None)
        self._scratch, self._drop_uid = cmd.scratch_host_dir, cmd.drop_uid
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *cmd.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=cmd.env, cwd=cmd.cwd,
                start_new_session=True, limit=FRAME_LIMIT,
                pass_fds=self.cgroup.fds if self.cgroup else ())
        except OSError as err:
            await self.kill()
            raise WorkerDied(f"worker {self.index} could not be started: {err}") from err
        self._stderr_task = asyncio.create_task(self._log_stderr(self.proc.stderr))
        try:
            self.info = await asyncio.wait_for(self._recv(), timeout_s)
        except (TimeoutError, WorkerDied) as err:
            await self.kill()
            raise WorkerDied(f"worker {self.index} did not start: {err}") from err
        if not self.info.get("ready"):
            await self.kill()
            raise WorkerDied(f"worker {self.index} sent {self.info!r} instead of ready")

    async def _log_stderr(self, stream: asyncio.StreamReader) -> None:
        # The zygote's own stderr (not the snippets'): surface it in the service log.
        while line := await stream.readline():
            log.warning("executor worker %d: %s", self.index, line.decode(errors="replace")
                        .rstrip()[:500])

    async def _recv(self) -> dict:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            head = await self.proc.stdout.readexactly(4)
            body = await self.proc.stdout.readexactly(struct.unpack(">I", head)[0])
        except (asyncio.IncompleteReadError, ConnectionError) as err:
            raise WorkerDied(f"worker {self.index} exited ({self.proc.returncode})") from err
        try:
            return json.loads(body)
        except ValueError as err:
            raise WorkerDied(f"worker {self.index} sent a malformed frame") from err

    async def call(self, request: dict, timeout_s: float) -> dict:
        """Send one call; the zygote's raw result dict. Raises WorkerDied."""
        assert self.proc is not None and self.proc.stdin is not None
        body = json.dumps(request).encode()
        try:
            self.proc.stdin.write(struct.pack(">I", len(body)) + body)
            await self.proc.stdin.drain()
            # A timeout scope, not wait_for: no task per call, so no extra turns of the
            # event loop between the reply's arrival and the caller.
            async with asyncio.timeout(timeout_s):
                reply = await self._recv()
        except (ConnectionError, BrokenPipeError) as err:
            raise WorkerDied(f"worker {self.index} pipe closed") from err
        except TimeoutError as err:
            raise WorkerDied(f"worker {self.index} did not answer in {timeout_s:.1f}s") from err
        if "fatal" in reply:
            raise WorkerDied(f"worker {self.index} failed: {reply['fatal'][-300:]}")
        self.calls += 1
        if reply.get("setup_error"):
            raise WorkerSetupFailed(f"worker {self.index} could not set up the sandbox for "
                                    f"the call: {reply['setup_error'][:300]}")
        return reply

    async def kill(self) -> None:
        """SIGKILL the worker: bwrap's process group and everything below it.

        bwrap starts the zygote in a new session (`--new-session`), so killing bwrap's group
        does not reach it, and an orphaned zygote would keep the pipes open (and `wait` would
        never return). Its host pid is found before bwrap dies; a SIGKILL to it from outside
        ends the sandbox's PID namespace, since it is that namespace's init.
        """
        if self.proc is not None:
            below = descendants(self.proc.pid)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            for pid in below:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            if self.proc.stdin is not None:
                self.proc.stdin.close()  # EOF ends a zygote that escaped both of the above
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), KILL_WAIT_S)
        if self._drop_uid is not None and self._scratch is not None:
            # Fallback mechanism only: no PID namespace ends the stragglers for us.
            kill_uid(self._drop_uid)
        if self._stderr_task is not None:
            self._stderr_task.cancel()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
        if self.cgroup is not None:
            self.cgroup.close()  # its processes are dead: the sandbox was killed above
            self.cgroup = None


def descendants(pid: int) -> list[int]:
    """Every live descendant of `pid`, parents before children (from /proc)."""
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            with contextlib.suppress(OSError), open(f"/proc/{parent}/task/{task}/children") as f:
                kids = [int(k) for k in f.read().split()]
                found += kids
                frontier += kids
    return found


def kill_uid(uid: int) -> None:
    """SIGKILL every process of `uid` (a uid owned by one fallback worker alone)."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as f:
                uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
        except (OSError, StopIteration):
            continue
        if str(uid) in uids:
            with contextlib.suppress(OSError):
                os.kill(int(name), signal.SIGKILL)


class WorkerPool:
    """`size` warm workers; `run` takes an idle one fairly, or waits for one.

    `reserved`: idle workers kept for clients that have no call running (capped at
    ``size - 1``). `memory`: "auto" (a memory cgroup per worker where one can be had, else
    the rlimit fallback), or a `cgroups.MemoryMode` value to insist on.
    """

    def __init__(self, plan: SandboxPlan, size: int, *, start_timeout_s: float = 60.0,
                 grace_s: float = 5.0, reserved: int = 1, memory: str = "auto") -> None:
        self.plan = plan
        self.size = size
        self.start_timeout_s = start_timeout_s
        self.grace_s = grace_s
        self.reserved = max(0, min(reserved, size - 1))
        self.memory = memory
        self.cgroups = CgroupRoot(MemoryMode.RLIMIT, None, "pool not started")
        self._uids: UidLease | None = None
        self._idle: deque[Worker] = deque()
        self._waiting: OrderedDict[Hashable, deque[asyncio.Future]] = OrderedDict()
        self._busy: Counter[Hashable] = Counter()
        self._workers: dict[int, Worker] = {}
        self._respawns: set[asyncio.Task] = set()
        self.respawned = 0
        self.setup_failures = 0
        self.closed = False

    async def start(self) -> None:
        if os.geteuid() == 0 and not self.plan.uids:
            self._uids = lease_uids(self.plan.uid_base, self.size)
            self.plan.uids = self._uids.uids
        # Named after our first uid (locked: no other executor has it) or our pid.
        tag = str(self.plan.uids[0]) if self.plan.uids else f"pid{os.getpid()}"
        self.cgroups = probe(tag, self.memory)
        log.info("executor %s", self.cgroups.describe())
        if not self.cgroups.whole_call:
            log.warning("EXECUTOR MEMORY LIMIT DEGRADED: %s", self.cgroups.describe())
        try:
            await asyncio.gather(*(self._spawn(i) for i in range(self.size)))
        except BaseException:
            await self.close()
            raise

    async def _spawn(self, index: int) -> None:
        worker = Worker(self.plan, index, self.cgroups)
        await worker.start(self.start_timeout_s)
        self._workers[index] = worker
        self._idle.append(worker)
        self._dispatch()

    @property
    def alive(self) -> int:
        return sum(1 for w in self._workers.values()
                   if w.proc is not None and w.proc.returncode is None)

    async def run(self, request: dict, wall_s: float, client: Hashable = "") -> dict:
        """Run one call for `client` on the next worker due to it. Raises WorkerDied (after
        scheduling a replacement) when the worker is lost or fails the call's set-up."""
        worker = await self._acquire(client)
        while worker.proc is None or worker.proc.returncode is not None:
            # It exited while idle (its clean-up after the previous call failed).
            self._busy[client] -= 1
            self._replace(worker)
            worker = await self._acquire(client)
        try:
            result = await worker.call(request, wall_s + self.grace_s)
        except WorkerSetupFailed:
            self.setup_failures += 1
            self._replace(worker)
            raise
        except BaseException:  # lost, or cancelled mid-call: its state is unknown
            self._replace(worker)
            raise
        finally:
            self._busy[client] -= 1
            if self._busy[client] <= 0:
                del self._busy[client]
        self._idle.append(worker)
        self._dispatch()
        return result

    def _may_take(self, client: Hashable) -> bool:
        return self._busy[client] == 0 or len(self._idle) > self.reserved

    def _dispatch(self) -> None:
        """Hand idle workers to waiting clients, round-robin over clients."""
        while self._idle:
            for client, queue in list(self._waiting.items()):
                while queue and queue[0].done():  # cancelled while waiting
                    queue.popleft()
                if not queue:
                    del self._waiting[client]
                    continue
                if not self._may_take(client):
                    continue
                self._busy[client] += 1
                queue.popleft().set_result(self._idle.popleft())
                if queue:
                    self._waiting.move_to_end(client)  # its next call: after the others
                else:
                    del self._waiting[client]
                break
            else:
                return

    async def _acquire(self, client: Hashable) -> Worker:
        future: asyncio.Future[Worker] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(client, deque()).append(future)
        self._dispatch()
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # granted as we were cancelled
                self._busy[client] -= 1
                if self._busy[client] <= 0:
                    del self._busy[client]
                self._idle.append(future.result())
                self._dispatch()
            raise

    def _replace(self, worker: Worker) -> None:
        task = asyncio.create_task(self._respawn(worker))
        self._respawns.add(task)
        task.add_done_callback(self._respawns.discard)

    async def _respawn(self, worker: Worker) -> None:
        await worker.kill()
        self._workers.pop(worker.index, None)
        delay = 0.05
        while not self.closed:
            try:
                await self._spawn(worker.index)
                self.respawned += 1
                log.info("executor worker %d respawned", worker.index)
                return
            except WorkerDied as err:
                log.error("respawn failed: %s; retrying in %.1fs", err, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def close(self) -> None:
        self.closed = True
        for task in list(self._respawns):
            task.cancel()
        await asyncio.gather(*self._respawns, return_exceptions=True)
        await asyncio.gather(*(w.kill() for w in self._workers.values()))
        self._workers.clear()
        self.cgroups.close()
        if self._uids is not None:
            self._uids.release()
