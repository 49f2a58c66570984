"""`python -m paretopo.healthcheck` (the probe of every compose health check) against a real
gRPC server with the standard health service and a real HTTP server, in child processes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_util import ROOT

from paretopo.netutil import free_port, wait_for_port
from paretopo.process import ManagedProcess

SERVERS = Path(__file__).with_name("health_servers.py")


def probe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "paretopo.healthcheck", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=30, check=False)


def start(tmp_path: Path, *args: str) -> tuple[ManagedProcess, int]:
    port = free_port()
    proc = ManagedProcess("health-" + args[0], [sys.executable, str(SERVERS), args[0],
                                                str(port), *args[1:]],
                          log_path=tmp_path / f"{args[0]}.log", cwd=str(ROOT)).start()
    return proc, port


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[dict[str, int]]:
    procs, ports = [], {}
    try:
        for key, args in {"serving": ("grpc", "serving"), "draining": ("grpc", "not-serving"),
                          "http": ("http",)}.items():
            proc, port = start(tmp_path, *args)
            procs.append(proc)
            ports[key] = port
        for port in ports.values():
            wait_for_port("127.0.0.1", port, timeout=30)
        yield ports
    finally:
        for proc in procs:
            proc.stop(grace=5)


def test_grpc_and_http_probes(servers: dict[str, int]) -> None:
    assert probe("grpc", f"127.0.0.1:{servers['serving']}").returncode == 0
    draining = probe("grpc", f"127.0.0.1:{servers['draining']}")
    assert draining.returncode == 1 and "not healthy" in draining.stderr
    assert probe("http", f"http://127.0.0.1:{servers['http']}/ok").returncode == 0
    for path in ("/fail", "/missing"):
        assert probe("http", f"http://127.0.0.1:{servers['http']}{path}").returncode == 1


def test_nothing_listening_is_unhealthy() -> None:
    port = free_port()
    assert probe("grpc", f"127.0.0.1:{port}").returncode == 1
    assert probe("http", f"http://127.0.0.1:{port}/healthz").returncode == 1


def test_bad_usage_exits_2() -> None:
    for args in ((), ("tcp", "x:1"), ("grpc",)):
        done = probe(*args)
        assert done.returncode == 2 and "usage" in done.stderr
