"""Build the executor's seccomp filter with the system's libseccomp (through ctypes).

The filter is a deny list on top of the namespaces: everything is allowed except system calls
that a snippet has no use for and that widen its reach (starting programs, debugging other
processes, new namespaces, mounts, kernel modules, BPF, keyrings, io_uring, ...), every
system call that changes another process's limits or scheduling (so a call cannot poison the
worker that forks it: ``prlimit64``, ``setpriority``, ``sched_set*``, ``ioprio_set`` are
allowed only on the caller itself), and the creation of System V IPC objects and POSIX
message queues (which would outlive the call, hold memory outside its limit, and carry data
to the next call; POSIX shared memory and semaphores live in ``/dev/shm``, which is wiped
after every call, and stay allowed). Sockets of
every family but ``AF_UNIX`` are refused, so the network stays closed even where no network
namespace exists (the fallback mechanism). Calls of another ABI (i386, x32) kill the
process: libseccomp adds that architecture check itself. The result is the classic-BPF
program as bytes, which the zygote installs with ``prctl(PR_SET_SECCOMP)`` after
``PR_SET_NO_NEW_PRIVS``.

When libseccomp is missing, `build_filter` returns None and the service says so loudly: it is
a second layer here, not the only one.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os

log = logging.getLogger(__name__)

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_NE = 1
SCMP_CMP_MASKED_EQ = 7
AF_UNIX = 1

# Namespace flags of clone(2): a snippet must not create namespaces (a user namespace would
# give it capabilities over a fresh mount table).
CLONE_NS_FLAGS = {
    "CLONE_NEWNS": 0x00020000, "CLONE_NEWCGROUP": 0x02000000, "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000, "CLONE_NEWUSER": 0x10000000, "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000, "CLONE_NEWTIME": 0x00000080,
}

DENIED_SYSCALLS = (
    # Only Python runs: the zygote installs the filter after its own exec, and a snippet
    # has no business starting programs (shells, compilers, the bwrap binary ...).
    "execve", "execveat",
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp",
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "mount_setattr",
    "fsopen", "fsmount", "fsconfig", "fspick", "open_tree", "move_mount",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "personality", "acct",
    "swapon", "swapoff", "reboot", "syslog", "quotactl", "open_by_handle_at",
    "name_to_handle_at", "lookup_dcookie", "fanotify_init", "vhangup", "iopl", "ioperm",
    "modify_ldt", "uselib", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "sethostname", "setdomainname", "move_pages", "migrate_pages",
    "process_madvise", "process_mrelease",
    # IPC objects that live in the IPC namespace, not in a process or a file of the wiped
    # scratch space: creating them is refused, so none can survive into the next call
    # (``ipc`` is the multiplexer of the architectures that have it).
    "shmget", "msgget", "semget", "mq_open", "ipc",
)

#: Calls whose first argument names the target process (0 = the caller): refused for any
#: other target, so that a snippet cannot lower the limits, the priority or the CPU set of
#: the zygote (PID 1 of the sandbox) or of anything else.
SELF_ONLY_BY_PID = ("prlimit64", "sched_setscheduler", "sched_setparam", "sched_setattr",
                    "sched_setaffinity")
#: Calls of the form (which, who, ...): allowed only as (<which for one process>, 0); a
#: process group or a whole uid (which reaches the zygote: same uid) is refused.
SELF_ONLY_BY_WHICH_WHO = {"setpriority": 0, "ioprio_set": 1}  # PRIO_PROCESS, IOPRIO_WHO_PROCESS


class ScmpArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


def _errno_action(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


def _load_libseccomp() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                           ctypes.c_uint, ctypes.POINTER(ScmpArgCmp)]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    return lib


def _add(lib: ctypes.CDLL, ctx: int, action: int, name: str, *cmps: ScmpArgCmp) -> bool:
    nr = lib.seccomp_syscall_resolve_name(name.encode())
    if nr < 0:
        return False  # not a system call on this architecture (e.g. iopl on aarch64)
    array = (ScmpArgCmp * len(cmps))(*cmps) if cmps else None
    rc = lib.seccomp_rule_add_array(ctx, action, nr, len(cmps), array)
    if rc != 0:
        raise OSError(-rc, f"seccomp_rule_add({name}) failed")
    return True


def build_filter() -> bytes | None:
    """The executor's seccomp program as classic-BPF bytes, or None without libseccomp."""
    lib = _load_libseccomp()
    if lib is None:
        log.warning("libseccomp not found: the executor runs WITHOUT a seccomp filter")
        return None
    ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
    if not ctx:
        raise OSError("seccomp_init failed")
    try:
        eperm = _errno_action(errno.EPERM)
        for name in DENIED_SYSCALLS:
            _add(lib, ctx, eperm, name)
        for name in SELF_ONLY_BY_PID:
            _add(lib, ctx, eperm, name, ScmpArgCmp(0, SCMP_CMP_NE, 0, 0))
        for name, which in SELF_ONLY_BY_WHICH_WHO.items():
            # Two rules: either argument out of line is enough to refuse the call.
            _add(lib, ctx, eperm, name, ScmpArgCmp(0, SCMP_CMP_NE, which, 0))
            _add(lib, ctx, eperm, name, ScmpArgCmp(1, SCMP_CMP_NE, 0, 0))
        _add(lib, ctx, _errno_action(errno.EACCES), "socket",
             ScmpArgCmp(0, SCMP_CMP_NE, AF_UNIX, 0))
        for flag in CLONE_NS_FLAGS.values():
            _add(lib, ctx, eperm, "clone", ScmpArgCmp(0, SCMP_CMP_MASKED_EQ, flag, flag))
        # clone3 passes its flags in memory, out of a filter's sight: ENOSYS makes the C
        # library fall back to clone(2), whose flags are checked above.
        _add(lib, ctx, _errno_action(errno.ENOSYS), "clone3")
        read_fd, write_fd = os.pipe()
        try:
            rc = lib.seccomp_export_bpf(ctx, write_fd)
            os.close(write_fd)
            write_fd = -1
            if rc != 0:
                raise OSError(-rc, "seccomp_export_bpf failed")
            chunks = []
            while chunk := os.read(read_fd, 65536):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)
    finally:
        lib.seccomp_release(ctx)
