"""Helpers: the index-builder CLI and search servers in their own processes, on free ports."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from paretopo.grpc_util import sync_channel
from paretopo.netutil import free_port
from paretopo.process import ManagedProcess
from paretopo.v1 import search_pb2_grpc

CORPUS = Path("/work/shared/data/qa/wiki18_passages_sample.jsonl")
SUBSET_LINES = (290, 590)  # same 300 passages as the unit tests' dense subset
SERVICE = "paretopo.v1.Search"


def build(corpus: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run the index-builder CLI in its own process."""
    return subprocess.run(
        [sys.executable, "-m", "services.tools.search.build_index", "--corpus", str(corpus),
         "--out", str(out), "--no-progress", *extra],
        capture_output=True, text=True, timeout=300, check=False)


@dataclass
class SearchUnderTest:
    process: ManagedProcess
    port: int
    metrics_port: int

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def channel(self) -> grpc.Channel:
        return sync_channel(self.target, SERVICE)

    def stub(self) -> search_pb2_grpc.SearchStub:
        return search_pb2_grpc.SearchStub(self.channel())

    def health(self, service: str = "") -> int:
        with self.channel() as ch:
            reply = health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=1.0)
        return reply.status

    def serving(self) -> bool:
        return self.health() == health_pb2.HealthCheckResponse.SERVING


def start_search(index_dir: Path, log_dir: Path, *args: str, env: dict[str, str] | None = None,
                 timeout: float = 120.0) -> SearchUnderTest:
    port, metrics_port = free_port(), free_port()
    process = ManagedProcess.python_module(
        "search", "services.tools.search", "--index-dir", str(index_dir), "--port", str(port),
        "--metrics-port", str(metrics_port), *args,
        log_path=log_dir / f"search-{port}.log", env=env)
    server = SearchUnderTest(process, port, metrics_port)
    process.start()
    try:
        process.wait_until(server.serving, timeout=timeout)
    except BaseException:
        process.stop()
        raise
    return server
