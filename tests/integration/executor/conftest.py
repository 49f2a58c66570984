"""A real executor server in another process, over real gRPC, stopped only by us."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from paretopo.netutil import free_port

REPO = Path(__file__).resolve().parents[3]
SECRET = "paretopo-secret-7f3a9c"
#: Workers of the module-wide executor: three, so that a batch still runs two at a time
#: with the one worker the pool reserves for other clients.
WORKERS = 3


@dataclass
class LiveExecutor:
    proc: subprocess.Popen
    target: str
    metrics_url: str
    log_path: Path


def wait_serving(target: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise TimeoutError(f"executor at {target} not serving after {timeout_s}s")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL: only the process this fixture started."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_executor(tmp: Path, *extra: str, workers: int = WORKERS) -> LiveExecutor:
    port, metrics_port = free_port(), free_port()
    env = {**os.environ, "PARETOPO_TEST_SECRET": SECRET, "AWS_SECRET_ACCESS_KEY": SECRET}
    log_path = tmp / "executor.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.tools.executor", "--port", str(port),
             "--metrics-port", str(metrics_port), "--workers", str(workers), *extra],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    target = f"127.0.0.1:{port}"
    try:
        wait_serving(target)
    except BaseException:
        stop(proc)
        raise
    return LiveExecutor(proc, target, f"http://127.0.0.1:{metrics_port}/metrics", log_path)


@pytest.fixture(scope="module")
def live_executor(tmp_path_factory) -> Iterator[LiveExecutor]:
    server = start_executor(tmp_path_factory.mktemp("executor"))
    try:
        yield server
    finally:
        stop(server.proc)


@pytest.fixture
def own_executor(tmp_path) -> Iterator[LiveExecutor]:
    """An executor for one test that may stop it itself (stopped here if it did not)."""
    server = start_executor(tmp_path)
    try:
        yield server
    finally:
        stop(server.proc)
