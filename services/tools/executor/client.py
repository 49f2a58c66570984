"""Async client of the executor, for the rollout service: deadlines always set."""

from __future__ import annotations

from collections.abc import Sequence

from paretopo.grpc_util import aio_channel
from paretopo.v1 import executor_pb2 as pb
from paretopo.v1 import executor_pb2_grpc as pb_grpc
from services.tools.executor.grpc import SERVICE_NAME, result_from_proto
from services.tools.executor.service import ExecResult


class ExecutorClient:
    """``await ExecutorClient("host:port").execute_batch(codes, timeout_s=30)``.

    `limits` (optional, per call) uses the field names of `paretopo.v1.ExecLimits`
    (``wall_s``, ``cpu_s``, ``memory_mb``, ...); unset fields take the server's defaults.
    Use as an async context manager, or call `close`.
    """

    def __init__(self, target: str) -> None:
        self.target = target
        self._channel = aio_channel(target, SERVICE_NAME)
        self._stub = pb_grpc.PythonExecutorStub(self._channel)

    async def __aenter__(self) -> ExecutorClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    @staticmethod
    def _request(code: str, limits: dict | None) -> pb.ExecuteRequest:
        req = pb.ExecuteRequest(code=code.encode("utf-8", "surrogatepass"))
        if limits:
            req.limits.CopyFrom(pb.ExecLimits(**limits))
        return req

    async def execute(self, code: str, *, limits: dict | None = None,
                      timeout_s: float = 30.0) -> ExecResult:
        """Run one snippet; raises grpc.aio.AioRpcError on a bad request or a dead server."""
        reply = await self._stub.Execute(self._request(code, limits), timeout=timeout_s)
        return result_from_proto(reply)

    async def execute_batch(self, codes: Sequence[str], *, limits: dict | None = None,
                            timeout_s: float = 60.0) -> list[ExecResult]:
        """Run many snippets concurrently on the server; results in the order of `codes`."""
        req = pb.ExecuteBatchRequest(snippets=[self._request(c, limits) for c in codes])
        reply = await self._stub.ExecuteBatch(req, timeout=timeout_s)
        return [result_from_proto(r) for r in reply.results]

    async def describe(self, *, timeout_s: float = 10.0) -> pb.ExecutorDescribeResponse:
        return await self._stub.Describe(pb.ExecutorDescribeRequest(), timeout=timeout_s)
