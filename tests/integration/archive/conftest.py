"""An archive service process over a real Redis, on free ports, owned by the test."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import httpx
import pytest

from paretopo.grpc_util import sync_channel
from paretopo.netutil import free_port
from paretopo.process import ManagedProcess
from paretopo.redis_server import EmbeddedRedis
from paretopo.v1 import archive_pb2, archive_pb2_grpc

TOKEN = "test-write-token"
AUTH = (("authorization", f"Bearer {TOKEN}"),)
HTTP_AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class ArchiveUnderTest:
    process: ManagedProcess
    redis: EmbeddedRedis
    grpc_port: int
    http_port: int

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def ready(self) -> bool:
        return httpx.get(f"{self.base_url}/readyz", timeout=1.0).status_code == 200

    def start(self) -> None:
        self.process.start()
        self.process.wait_until(self.ready, timeout=60)

    def stub(self) -> archive_pb2_grpc.ArchiveStub:
        return archive_pb2_grpc.ArchiveStub(sync_channel(self.grpc_target, "paretopo.v1.Archive"))


def start_archive(redis: EmbeddedRedis, log_dir, **extra: str) -> ArchiveUnderTest:
    grpc_port, http_port = free_port(), free_port()
    args = ["--grpc-port", str(grpc_port), "--http-port", str(http_port),
            "--redis-url", redis.url, "--write-token", TOKEN]
    for key, value in extra.items():
        args += [f"--{key.replace('_', '-')}", value]
    process = ManagedProcess.python_module("archive", "services.archive", *args,
                                           log_path=log_dir / "archive.log")
    archive = ArchiveUnderTest(process, redis, grpc_port, http_port)
    try:
        archive.start()
    except BaseException:
        process.stop()  # one that started but never became ready must not outlive the test
        raise
    return archive


@pytest.fixture
def archive(redis_server, tmp_path) -> Iterator[ArchiveUnderTest]:
    under_test = start_archive(redis_server, tmp_path)
    try:
        yield under_test
    finally:
        under_test.process.stop()


def create_run(stub, run_id: str, **stage1) -> archive_pb2.RunInfo:
    config = archive_pb2.RunConfig(run_id=run_id, stage1=archive_pb2.Stage1Settings(**stage1))
    return stub.CreateRun(archive_pb2.CreateRunRequest(config=config), metadata=AUTH, timeout=5)


def grpc_code(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code()
