"""A memory limit for each call as a whole: one memory cgroup per worker, limit set per call.

Only one call runs on a worker at a time, so a cgroup per worker is a cgroup per call. The
service creates it (as root, or where the cgroup tree is delegated to it) and hands the
zygote three file descriptors it opened itself: ``cgroup.procs`` (the call's child writes
``0`` there to move itself in before it runs anything), the limit file (that child writes its
call's ``memory_mb`` when it has read the call, before the snippet runs) and the OOM counter
(read by the zygote before and after the call, so that an OOM kill is reported as the memory
limit). The kernel checks a cgroup write against the
credentials of whoever *opened* the file, so the unprivileged zygote needs no access to the
cgroup file system, which is not even mounted in the sandbox; the snippet never holds these
descriptors (the child closes them before the snippet runs, and the zygote is not dumpable).

Everything the call's processes touch is charged there: heap of every process, tmpfs pages of
``/tmp`` and ``/dev/shm``, page cache; so N processes share one limit, and what was charged
is released when the call's processes are killed and its scratch space wiped (System V shared
memory, which would survive both, cannot be created: see `seccomp.py`).

Modes, first that works: ``cgroup-v2`` (a cgroup2 hierarchy with the memory controller
available to the service's cgroup), ``cgroup-v1`` (the legacy memory hierarchy, e.g. a hybrid
host like these VMs), else ``rlimit``: the fallback, per-process ``RLIMIT_AS`` with at most
``max_processes`` processes, so a call holds at most ``max_processes × memory_mb``. The mode
is logged, returned by ``Describe`` and exported as a metric, like the sandbox mechanism.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


class MemoryMode(enum.StrEnum):
    CGROUP_V2 = "cgroup-v2"
    CGROUP_V1 = "cgroup-v1"
    RLIMIT = "rlimit"


#: Per mode: (the limit file, the file that counts OOM kills).
FILES = {
    MemoryMode.CGROUP_V2: ("memory.max", "memory.events"),
    MemoryMode.CGROUP_V1: ("memory.limit_in_bytes", "memory.oom_control"),
}


def _mounts(fstype: str) -> list[tuple[str, str, str]]:
    """(mount point, root inside the hierarchy, super options) of every `fstype` mount."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, rfields = left.split(), right.split()
            if rfields and rfields[0] == fstype:
                out.append((fields[4], fields[3], rfields[2] if len(rfields) > 2 else ""))
    return out


def _own_cgroup(match) -> str | None:
    """Our path in the hierarchy whose /proc/self/cgroup line satisfies `match`."""
    with open("/proc/self/cgroup") as f:
        for line in f:
            hid, controllers, path = line.rstrip("\n").split(":", 2)
            if match(hid, controllers.split(",")):
                return path
    return None


def _join(mount: str, root: str, path: str) -> str:
    rel = os.path.relpath(path, root) if path.startswith(root) else path.lstrip("/")
    return os.path.normpath(os.path.join(mount, rel))


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


@dataclass
class CgroupRoot:
    """Where the worker cgroups of one executor live, and which mode is in force."""

    mode: MemoryMode
    path: str | None = None
    reason: str = ""
    _serial: int = field(default=0, repr=False)

    @property
    def whole_call(self) -> bool:
        return self.mode is not MemoryMode.RLIMIT

    def describe(self) -> str:
        if self.mode is MemoryMode.RLIMIT:
            return ("memory: FALLBACK per-process RLIMIT_AS (no usable memory cgroup: "
                    f"{self.reason}); a call may hold up to max_processes × memory_mb")
        return (f"memory: {self.mode} limit on each call as a whole (all its processes, "
                "tmpfs and page cache together); an OOM kill is reported as MEMORY_LIMIT")

    def worker(self, tag: str) -> WorkerCgroup | None:
        """A fresh cgroup for one worker (None in the fallback)."""
        if self.path is None:
            return None
        self._serial += 1
        path = os.path.join(self.path, f"{tag}-{self._serial}")
        os.mkdir(path)
        try:
            return WorkerCgroup.open(self.mode, path)
        except OSError:
            _rmdir(path)
            raise

    def close(self) -> None:
        if self.path is not None:
            _rmdir(self.path)


@dataclass
class WorkerCgroup:
    mode: MemoryMode
    path: str
    procs_fd: int
    limit_fd: int
    events_fd: int

    @classmethod
    def open(cls, mode: MemoryMode, path: str) -> WorkerCgroup:
        limit_file, events_file = FILES[mode]
        # Settings that hold for every call, written once. No swap: the limit is on memory,
        # not to be stretched onto a disk (absent files: a kernel without swap accounting).
        settings = ({"memory.swap.max": "0", "memory.oom.group": "1"}
                    if mode is MemoryMode.CGROUP_V2 else {"memory.swappiness": "0"})
        for name, value in settings.items():
            with contextlib.suppress(OSError):
                _write(os.path.join(path, name), value)
        fds: list[int] = []
        try:
            for name, flags in (("cgroup.procs", os.O_WRONLY), (limit_file, os.O_WRONLY),
                                (events_file, os.O_RDONLY)):
                fds.append(os.open(os.path.join(path, name), flags))
        except OSError:
            for fd in fds:
                os.close(fd)
            raise
        return cls(mode, path, *fds)

    @property
    def fds(self) -> tuple[int, int, int]:
        return self.procs_fd, self.limit_fd, self.events_fd

    def zygote_config(self) -> dict:
        return {"version": self.mode.value, "procs_fd": self.procs_fd,
                "limit_fd": self.limit_fd, "events_fd": self.events_fd}

    def close(self) -> None:
        """Close our descriptors and remove the cgroup (once its processes are gone)."""
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        _rmdir(self.path)


def _rmdir(path: str) -> None:
    """rmdir a cgroup; its killed processes may need a moment to leave it."""
    for _ in range(50):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)
    log.warning("cgroup %s could not be removed (processes still in it?)", path)


def _remove_stale(path: str) -> None:
    """Remove what a killed executor with the same tag left (empty cgroups only)."""
    if not os.path.isdir(path):
        return
    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            _rmdir(entry.path)
    _rmdir(path)


def _try_v2(name: str) -> tuple[str | None, str]:
    mounts = _mounts("cgroup2")
    own = _own_cgroup(lambda hid, _c: hid == "0")
    if not mounts or own is None:
        return None, "no cgroup2 hierarchy"
    mount, root, _ = mounts[0]
    parent = _join(mount, root, own)
    try:
        with open(os.path.join(parent, "cgroup.controllers")) as f:
            if "memory" not in f.read().split():
                return None, f"cgroup2 at {mount}: memory controller not available to {own}"
        with open(os.path.join(parent, "cgroup.subtree_control")) as f:
            enabled = "memory" in f.read().split()
        if not enabled:
            # Fails (EBUSY) when our own cgroup holds processes and is not the root: cgroup
            # v2 gives controllers only to the children of a cgroup without processes.
            _write(os.path.join(parent, "cgroup.subtree_control"), "+memory")
        path = os.path.join(parent, name)
        _remove_stale(path)
        os.mkdir(path)
    except OSError as err:
        return None, f"cgroup2 at {parent}: {err.strerror or err}"
    try:
        _write(os.path.join(path, "cgroup.subtree_control"), "+memory")
    except OSError as err:
        _rmdir(path)
        return None, f"cgroup2 at {path}: cannot enable memory below it: {err.strerror}"
    return path, ""


def _try_v1(name: str) -> tuple[str | None, str]:
    mounts = [m for m in _mounts("cgroup") if "memory" in m[2].split(",")]
    own = _own_cgroup(lambda _h, controllers: "memory" in controllers)
    if not mounts or own is None:
        return None, "no cgroup v1 memory hierarchy"
    mount, root, _ = mounts[0]
    path = os.path.join(_join(mount, root, own), name)
    try:
        _remove_stale(path)
        os.mkdir(path)
    except OSError as err:
        return None, f"cgroup v1 memory at {os.path.dirname(path)}: {err.strerror or err}"
    return path, ""


def probe(tag: str, wanted: str = "auto") -> CgroupRoot:
    """The strongest memory mode usable here. `wanted`: "auto", or one `MemoryMode` value
    (a cgroup mode that cannot be had raises RuntimeError; "rlimit" forces the fallback)."""
    name = f"paretopo-exec-{tag}"
    if wanted == MemoryMode.RLIMIT:
        return CgroupRoot(MemoryMode.RLIMIT, None, "chosen by configuration")
    reasons = []
    for mode, attempt in ((MemoryMode.CGROUP_V2, _try_v2), (MemoryMode.CGROUP_V1, _try_v1)):
        if wanted not in ("auto", mode):
            continue
        path, why = attempt(name)
        if path is not None:
            root = CgroupRoot(mode, path)
            # The proof: one worker cgroup opened and removed again.
            try:
                root.worker("probe").close()
            except OSError as err:
                root.close()
                reasons.append(f"{mode}: {err}")
                continue
            return root
        reasons.append(why)
    if wanted != "auto":
        raise RuntimeError(f"memory mode {wanted!r} requested but unusable: {'; '.join(reasons)}")
    return CgroupRoot(MemoryMode.RLIMIT, None, "; ".join(reasons))
