"""Executor pieces without a network: classification, validation, sandbox command lines,
the seccomp filter, and the warm pool under the degraded `rlimits` mechanism."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal

import pytest

from paretopo.errors import InvalidArgument
from services.tools.executor.pool import WorkerPool
from services.tools.executor.sandbox import Mechanism, SandboxPlan, bwrap_argv, make_plan
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
