"""Executor pieces without a network: classification, validation, sandbox command lines,
the seccomp filter (what it refuses and what it still allows), the per-call cleanup of deep
trees, uid leases, memory cgroups, and the warm pool under the degraded `rlimits` mechanism
(set-up failures replace the worker)."""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import signal
import sys

import pytest

from paretopo.errors import InvalidArgument
from services.tools.executor.cgroups import CgroupRoot
from services.tools.executor.pool import WorkerPool, WorkerSetupFailed
from services.tools.executor.sandbox import (
    ZYGOTE_SOURCE,
    Mechanism,
    SandboxPlan,
    bwrap_argv,
    lease_uids,
    make_plan,
)
from services.tools.executor.seccomp import build_filter
from services.tools.executor.service import ErrorKind, ExecutorService, Limits, classify

RAW = {"stdout": "", "stdout_truncated": False, "stdout_bytes": 0, "stderr_tail": "",
       "exit_code": 0, "signal": 0, "timed_out": False, "output_flooded": False,
       "killed": False, "exception": None, "memory_error": False, "syntax_error": False,
       "duration_s": 0.01, "cpu_s": 0.0}


@pytest.mark.parametrize("changes,kind", [
    ({}, ErrorKind.NONE),
    ({"timed_out": True, "killed": True, "signal": 9, "exit_code": -9}, ErrorKind.TIMEOUT),
    ({"output_flooded": True, "killed": True, "signal": 9}, ErrorKind.OUTPUT_LIMIT),
    ({"signal": int(signal.SIGXCPU)}, ErrorKind.CPU_LIMIT),
    ({"signal": 9, "cpu_s": 5.0}, ErrorKind.CPU_LIMIT),
    ({"signal": 9, "cpu_s": 0.1}, ErrorKind.KILLED_BY_SIGNAL),
    ({"memory_error": True, "exception": "MemoryError", "exit_code": 1},
     ErrorKind.MEMORY_LIMIT),
    ({"signal": int(signal.SIGXFSZ)}, ErrorKind.FILE_SIZE_LIMIT),
    ({"syntax_error": True, "exception": "SyntaxError", "exit_code": 1},
     ErrorKind.SYNTAX_ERROR),
    ({"exception": "ValueError", "exit_code": 1, "stderr_tail": "Tb\nValueError: x\n"},
     ErrorKind.EXCEPTION),
    ({"signal": int(signal.SIGSEGV), "exit_code": -11}, ErrorKind.KILLED_BY_SIGNAL),
    ({"exit_code": 3}, ErrorKind.NONZERO_EXIT),
])
def test_classify_gives_one_kind(changes, kind):
    result = classify({**RAW, **changes}, Limits(cpu_s=5.0))
    assert result.error is kind
    assert result.memory_exceeded == (kind is ErrorKind.MEMORY_LIMIT)
    assert (result.error_message == "") == (kind is ErrorKind.NONE)


def test_exception_message_is_last_traceback_line():
    raw = {**RAW, "exception": "ValueError", "exit_code": 1,
           "stderr_tail": "Traceback ...\n  File x\nValueError: bad\n"}
    assert classify(raw, Limits()).error_message == "ValueError: bad"


def _plan() -> SandboxPlan:
    return SandboxPlan(Mechanism.RLIMITS, "/usr/bin/python3", [], [], None)


def test_validation_rejects_bad_input():
    service = ExecutorService(WorkerPool(_plan(), 1), defaults=Limits(),
                              maxima=Limits(wall_s=10), max_code_bytes=100, max_batch=2)
    for code in [b"\xff", "   ", "x" * 101]:
        with pytest.raises(InvalidArgument):
            service.validate(code, None)
    with pytest.raises(InvalidArgument, match="above the server maximum"):
        service.validate("print(1)", {"wall_s": 11})
    with pytest.raises(InvalidArgument, match="negative"):
        service.validate("print(1)", {"cpu_s": -1})
    assert service.validate("print(1)", {"wall_s": 2})[1] == Limits(wall_s=2)
    with pytest.raises(InvalidArgument, match="empty"):
        asyncio.run(service.execute_batch([]))
    with pytest.raises(InvalidArgument, match="limit is 2"):
        asyncio.run(service.execute_batch([("print(1)", None)] * 3))
    with pytest.raises(ValueError, match="above its maximum"):
        ExecutorService(WorkerPool(_plan(), 1), defaults=Limits(wall_s=20),
                        maxima=Limits(wall_s=10))


def test_bwrap_command_isolates_and_binds_read_only():
    plan = SandboxPlan(Mechanism.BWRAP, "/opt/py/bin/python3", ["/srv/venv/site"], [], None,
                       bwrap="/bin/bwrap")
    argv = bwrap_argv(plan, as_root=False)
    for flag in ["--unshare-net", "--unshare-pid", "--unshare-user", "--disable-userns",
                 "--die-with-parent", "--as-pid-1", "--clearenv", "--new-session"]:
        assert flag in argv
    pairs = list(zip(argv, argv[1:], argv[2:], strict=False))
    assert ("--ro-bind", "/opt/py", "/opt/py") in pairs
    assert ("--ro-bind", "/srv/venv/site", "/srv/venv/site") in pairs
    assert "--bind" not in argv  # nothing of the host is writable
    assert argv[-1] == "--"
    root_argv = bwrap_argv(plan, as_root=True)
    assert "--unshare-user" not in root_argv
    assert ("--cap-drop", "ALL") in itertools.pairwise(root_argv)


def test_seccomp_filter_is_a_bpf_program():
    bpf = build_filter()
    if bpf is None:
        pytest.skip("libseccomp is not installed here")
    assert len(bpf) % 8 == 0 and 10 < len(bpf) // 8 < 4096  # struct sock_filter is 8 bytes


REQ = {"wall_s": 3.0, "cpu_s": 2.0, "memory_mb": 1024, "max_output_bytes": 4096,
       "max_processes": 16, "max_file_bytes": 1 << 20, "max_open_files": 64,
       "output_kill_factor": 16}


@pytest.mark.slow
def test_fallback_mechanism_still_limits_and_cleans_up(monkeypatch):
    """The degraded mechanism: empty env, seccomp (no network, no exec), rlimits, and no
    process of a call survives into the next."""
    monkeypatch.setenv("PARETOPO_TEST_SECRET", "fallback-secret")
    snippets = {
        "env": "import os; print('fallback-secret' in repr(dict(os.environ)))",
        "net": "import socket\ntry:\n    socket.socket()\n    print('open')\n"
               "except OSError:\n    print('refused')",
        "exec": "import os; print(os.system('true') != 0)",
        "fork": "import os\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n"
                "            import time; time.sleep(30)\n        n += 1\n"
                "except OSError:\n    print(n < 16)",
        "daemon": "import os, time\nif os.fork() == 0:\n    os.setsid()\n"
                  "    time.sleep(60)\nprint(os.getpid())",
        "check": "import os\nprint(os.path.exists(f'/proc/{PID}'))",
    }

    async def go():
        # Preloaded: as root, the worker's uid may not reach the interpreter's own files.
        plan = make_plan(mechanism="rlimits", preload=["socket", "subprocess", "time"])
        assert plan.degraded and plan.warnings
        pool = WorkerPool(plan, 1)
        await pool.start()
        try:
            out = {}
            for name, code in snippets.items():
                code = code.replace("PID", out.get("daemon", "0").strip())
                out[name] = (await pool.run({**REQ, "code": code}, 3.0))["stdout"]
            return out
        finally:
            await pool.close()

    out = asyncio.run(go())
    assert out["env"] == "False\n"
    if build_filter() is not None:
        assert out["net"] == "refused\n" and out["exec"] == "True\n"
    if os.geteuid() == 0:  # NPROC holds because the worker dropped to its own uid
        assert out["fork"] == "True\n"
    assert out["check"] == "False\n"  # the setsid daemon of the previous call is gone


def test_reply_comes_on_the_final_record_and_nothing_of_the_call_survives():
    """The zygote replies on the child's final status record, without waiting for it to
    exit; the child, parked meanwhile, is killed before the next call, and so is a snippet
    that forges that record and keeps running (it only ends its own call early); a
    malformed record breaks nothing. A forked
    copy of a snippet still exits (the snippet's waitpid returns), and a flood of the status
    pipe cannot make the zygote hold more than its cap: the call runs into its wall time."""
    forge = ("import json, os, time\nprint(os.getpid(), flush=True)\n"
             "os.write(3, (json.dumps({'pid': os.getpid(), 'done': True, 'exit': 0, "
             "'cpu_s': 0.0, 'exc': None}) + '\\n').encode())\ntime.sleep(30)")
    alive = "import os; print(os.path.exists(f'/proc/{PID}'))"
    calls = [
        ("plain", "import os; print(os.getpid())", 3.0),
        ("plain_alive", alive, 3.0),
        ("forge", forge, 10.0),
        ("forge_alive", alive, 3.0),
        ("forge_bad", "import json, os\nos.write(3, (json.dumps({'pid': os.getpid(), 'done': "
                      "True, 'exit': 'x', 'exc': {'a': 1}}) + '\\n').encode())\nos._exit(0)",
         3.0),
        ("fork", "import os\nif (pid := os.fork()) == 0:\n    print('copy', flush=True)\n"
                 "else:\n    os.waitpid(pid, 0)\n    print('parent')", 3.0),
        ("flood", "import os\nline = b'{\"pid\": %d}\\n' % os.getpid()\nwhile True:\n"
                  "    os.write(3, line * 1000)", 1.0),
        ("after", "print(1 + 1)", 3.0),
    ]

    async def go() -> tuple[dict, int]:
        pool = WorkerPool(make_plan(mechanism="rlimits", preload=["time"]), 1,
                          memory="rlimit")
        await pool.start()
        try:
            out: dict = {}
            for name, code, wall_s in calls:
                pid = (out.get(name.removesuffix("_alive")) or {}).get("stdout", "0").strip()
                out[name] = await pool.run({**REQ, "code": code.replace("PID", pid),
                                            "wall_s": wall_s}, wall_s)
            # The child takes the call from the service's pipe and announces it on the
            # status pipe before any output: output that arrives with that record must
            # still be kept (the zygote reads the status pipe first).
            out["many"] = [(await pool.run({**REQ, "code": f"print({i})"}, 3.0))["stdout"]
                           for i in range(150)]
            return out, pool.respawned
        finally:
            await pool.close()

    out, respawned = asyncio.run(go())
    assert out["many"] == [f"{i}\n" for i in range(150)]
    assert out["plain"]["exit_code"] == 0 and not out["plain"]["killed"]
    assert out["plain_alive"]["stdout"] == "False\n"
    forged = out["forge"]
    assert not forged["timed_out"] and forged["duration_s"] < 5.0, forged
    assert out["forge_alive"]["stdout"] == "False\n"  # the forger was killed
    # A malformed record is not final and breaks nothing: the exit status is the real one.
    assert out["forge_bad"]["exit_code"] == 0 and out["forge_bad"]["exception"] is None
    assert out["fork"]["stdout"] == "copy\nparent\n" and out["fork"]["exit_code"] == 0
    assert out["flood"]["timed_out"] and out["flood"]["killed"]
    assert out["after"]["stdout"] == "2\n" and respawned == 0


@pytest.mark.slow
def test_each_call_starts_with_the_call_environment():
    """The zygote sets the call environment once and each child inherits it: every call
    sees exactly that set (the worker's own variables gone), and what a call does to its
    environment, or to the process's signal handlers, stays in that call."""
    show = ("import os, signal\nprint(sorted(os.environ), os.environ['HOME'] == os.getcwd(), "
            "signal.getsignal(signal.SIGPIPE) is signal.SIG_DFL)")
    spoil = ("import os, signal\nos.environ.clear(); os.environ['PLANTED'] = '1'\n"
             "os.putenv('HOME', '/nowhere'); signal.signal(signal.SIGPIPE, signal.SIG_IGN)\n"
             "print('spoiled')")

    async def go() -> list[str]:
        pool = WorkerPool(make_plan(mechanism="rlimits", preload=[]), 1, memory="rlimit")
        await pool.start()
        try:
            return [(await pool.run({**REQ, "code": code}, 3.0))["stdout"]
                    for code in (show, spoil, show)]
        finally:
            await pool.close()

    first, spoiled, after = asyncio.run(go())
    names = ["HOME", "LANG", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "PATH",
             "PYTHONHASHSEED", "TMPDIR"]
    assert first == f"{names} True True\n" and spoiled == "spoiled\n" and after == first


@pytest.mark.slow
def test_bwrap_sees_site_packages_that_live_under_tmp(tmp_path):
    """A virtual environment under /tmp (a CI clone there) stays importable in the sandbox,
    which binds it elsewhere: the sandbox's own /tmp stays empty."""
    try:
        plan = make_plan(mechanism="bwrap")
    except RuntimeError as err:
        pytest.skip(f"bwrap cannot run here: {err}")
    site = tmp_path / "venv-site"
    site.mkdir()
    (site / "paretopo_probe.py").write_text("ANSWER = 42\n")
    site.chmod(0o755)
    (site / "paretopo_probe.py").chmod(0o644)
    assert str(site).startswith("/tmp/")
    plan.site_dirs = [*plan.site_dirs, str(site)]

    async def go() -> str:
        pool = WorkerPool(plan, 1)
        await pool.start()
        try:
            code = ("import os, paretopo_probe\n"
                    "print(paretopo_probe.ANSWER, os.listdir('/tmp'), os.listdir('/dev/shm'))")
            return (await pool.run({**REQ, "code": code}, 5.0))["stdout"]
        finally:
            await pool.close()

    assert asyncio.run(go()) == "42 ['run'] []\n"


def test_limits_must_be_finite():
    service = ExecutorService(WorkerPool(_plan(), 1), defaults=Limits(), maxima=Limits())
    for name in ("wall_s", "cpu_s"):
        for value in (math.nan, math.inf, -math.inf):
            with pytest.raises(InvalidArgument, match="finite"):
                service.validate("print(1)", {name: value})


def _zygote_namespace() -> dict:
    """zygote.py's functions, loaded as the sandbox loads the file (it is not a module)."""
    namespace: dict = {"__name__": "zygote_under_test"}
    exec(compile(ZYGOTE_SOURCE, "zygote.py", "exec"), namespace)
    return namespace


def test_wipe_survives_a_4000_deep_tree_with_locked_directories(tmp_path):
    """The per-call cleanup neither recurses nor builds long paths: a 4000-deep tree (far
    past the recursion limit and PATH_MAX) with chmod-000 directories is emptied."""
    wipe = _zygote_namespace()["wipe"]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    fd = os.open(scratch, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for depth in range(4000):
            os.mkdir("d", dir_fd=fd)
            if depth % 1000 == 999:
                os.chmod("d", 0, dir_fd=fd)
                os.chmod("d", 0o700, dir_fd=fd)  # re-opened below, then locked again
            child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        os.close(os.open("leaf", os.O_WRONLY | os.O_CREAT, dir_fd=fd))
        os.symlink("/etc", "link", dir_fd=fd)
        os.chmod(".", 0, dir_fd=fd)  # the bottom directory: neither listable nor writable
    finally:
        os.close(fd)
    for i in range(50):
        (scratch / f"f{i}").write_text("x")
    wipe(str(scratch))
    assert os.listdir(scratch) == []


def test_uid_leases_of_two_executors_are_disjoint(tmp_path):
    first = lease_uids(200000, 3, lock_dir=str(tmp_path))
    second = lease_uids(200000, 3, lock_dir=str(tmp_path))  # same base: another executor
    try:
        assert len(set(first.uids)) == len(set(second.uids)) == 3
        assert not set(first.uids) & set(second.uids)
    finally:
        first.release()
    third = lease_uids(200000, 3, lock_dir=str(tmp_path))  # released uids are free again
    try:
        assert third.uids == first.uids
    finally:
        second.release()
        third.release()


def _run_filtered(code: str) -> str:
    """Run `code` in a forked child of this process under the executor's seccomp filter;
    what it printed."""
    bpf = build_filter()
    if bpf is None:
        pytest.skip("libseccomp is not installed here")
    install = _zygote_namespace()["install_seccomp"]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read)
            sys.stdout = open(write, "w")  # noqa: SIM115 - this child ends below
            install(bpf)
            exec(code, {"PARENT": os.getppid()})
            sys.stdout.flush()
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        out = f.read()
    os.waitpid(pid, 0)
    return out


def test_seccomp_keeps_a_call_from_changing_other_processes():
    """prlimit/setpriority/sched_setscheduler/sched_setaffinity on another process (the
    zygote, for a snippet) are refused; the same calls on the caller itself still work."""
    out = _run_filtered(
        "import os, resource\n"
        "def attempt(name, call):\n"
        "    try:\n        call()\n        print(name, 'allowed')\n"
        "    except OSError:\n        print(name, 'refused')\n"
        "attempt('prlimit_other', lambda: resource.prlimit(PARENT, resource.RLIMIT_FSIZE,\n"
        "        resource.getrlimit(resource.RLIMIT_FSIZE)))\n"
        "attempt('nice_other', lambda: os.setpriority(os.PRIO_PROCESS, PARENT, 19))\n"
        "attempt('nice_user', lambda: os.setpriority(os.PRIO_USER, 0, 19))\n"
        "attempt('nice_group', lambda: os.setpriority(os.PRIO_PGRP, 0, 19))\n"
        "attempt('sched_other', lambda: os.sched_setscheduler(PARENT, os.SCHED_IDLE,\n"
        "        os.sched_param(0)))\n"
        "attempt('affinity_other', lambda: os.sched_setaffinity(PARENT, {0}))\n"
        "attempt('setrlimit_self', lambda: resource.setrlimit(resource.RLIMIT_FSIZE,\n"
        "        (1 << 20, 1 << 20)))\n"
        "attempt('nice_self', lambda: os.nice(1))\n"
        "attempt('sched_self', lambda: os.sched_setscheduler(0, os.SCHED_IDLE,\n"
        "        os.sched_param(0)))\n")
    result = dict(line.split() for line in out.splitlines())
    assert result == {"prlimit_other": "refused", "nice_other": "refused",
                      "nice_user": "refused", "nice_group": "refused",
                      "sched_other": "refused", "affinity_other": "refused",
                      "setrlimit_self": "allowed", "nice_self": "allowed",
                      "sched_self": "allowed"}


def test_seccomp_refuses_system_v_ipc_and_message_queues():
    out = _run_filtered(
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "print(libc.shmget(0, 4096, 0o1000 | 0o600), libc.msgget(0, 0o1000 | 0o600),\n"
        "      libc.semget(0, 1, 0o1000 | 0o600))\n")
    assert out.split() == ["-1", "-1", "-1"]


@pytest.mark.slow
def test_worker_whose_call_setup_fails_is_replaced_and_counted():
    """A call whose sandbox set-up fails in the worker (here: an open-files limit above what
    the kernel allows) ends the worker: it is replaced and counted, never kept serving."""
    async def go() -> tuple[str, int, int, str]:
        pool = WorkerPool(make_plan(mechanism="rlimits"), 1, memory="rlimit")
        await pool.start()
        try:
            first_pid = pool._workers[0].proc.pid
            with pytest.raises(WorkerSetupFailed, match="set up"):
                await pool.run({**REQ, "code": "print(1)", "max_open_files": 1 << 40}, 3.0)
            reply = await asyncio.wait_for(pool.run({**REQ, "code": "print(2)"}, 3.0), 30)
            assert pool._workers[0].proc.pid != first_pid
            return reply["stdout"], pool.respawned, pool.setup_failures, reply["exception"]
        finally:
            await pool.close()

    assert asyncio.run(go()) == ("2\n", 1, 1, None)


@pytest.mark.slow
def test_memory_mode_is_stated_and_cgroups_are_removed():
    """`probe` picks a memory mode that works (or the fallback, with its reason); a pool
    removes the cgroups it made when it closes."""
    async def go() -> tuple[CgroupRoot, list[str]]:
        pool = WorkerPool(make_plan(mechanism="rlimits"), 1)
        await pool.start()
        try:
            made = [w.cgroup.path for w in pool._workers.values() if w.cgroup]
            reply = await pool.run({**REQ, "code": "print(1)"}, 3.0)
            assert reply["stdout"] == "1\n" and reply["oom_killed"] is False
        finally:
            await pool.close()
        return pool.cgroups, made

    root, made = asyncio.run(go())
    assert root.describe().startswith("memory: ")
    if root.whole_call:
        assert made and not any(os.path.exists(p) for p in made)
        assert not os.path.exists(root.path)
    else:
        assert root.reason and "FALLBACK" in root.describe() and not made
