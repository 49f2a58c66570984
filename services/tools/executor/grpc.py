"""Thin gRPC adapter over `ExecutorService`: protobuf in, service call, protobuf out."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from paretopo.v1 import executor_pb2 as pb
from paretopo.v1 import executor_pb2_grpc as pb_grpc
from services.tools.executor.sandbox import Mechanism
from services.tools.executor.service import ErrorKind, ExecResult, ExecutorService, Limits

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["PythonExecutor"].full_name
LIMIT_FIELDS = ("wall_s", "cpu_s", "memory_mb", "max_output_bytes", "max_processes",
                "max_file_bytes")
MECHANISMS = {Mechanism.BWRAP: pb.ISOLATION_MECHANISM_BWRAP,
              Mechanism.RLIMITS: pb.ISOLATION_MECHANISM_RLIMITS}


# Looked up once: every result converts its error kind.
KIND_TO_PROTO = {kind: pb.ExecErrorKind.Value(f"EXEC_ERROR_KIND_{kind.name}")
                 for kind in ErrorKind}
KIND_FROM_PROTO = {value: kind for kind, value in KIND_TO_PROTO.items()}


def error_kind_to_proto(kind: ErrorKind) -> int:
    return KIND_TO_PROTO[kind]


def error_kind_from_proto(value: int) -> ErrorKind:
    return KIND_FROM_PROTO[value]


def limits_from_proto(request: pb.ExecuteRequest) -> dict | None:
    if not request.HasField("limits"):
        return None
    return {name: getattr(request.limits, name) for name in LIMIT_FIELDS
            if getattr(request.limits, name)}


def limits_to_proto(limits: Limits) -> pb.ExecLimits:
    return pb.ExecLimits(**{name: getattr(limits, name) for name in LIMIT_FIELDS})


def result_to_proto(r: ExecResult) -> pb.ExecuteResult:
    return pb.ExecuteResult(
        stdout=r.stdout, stdout_truncated=r.output_truncated, stderr_tail=r.stderr_tail,
        exit_code=r.exit_code, timed_out=r.timed_out, memory_exceeded=r.memory_exceeded,
        killed=r.killed, error_kind=error_kind_to_proto(r.error),
        error_message=r.error_message, duration_ms=r.duration_ms, stdout_bytes=r.stdout_bytes)


def result_from_proto(m: pb.ExecuteResult) -> ExecResult:
    return ExecResult(
        stdout=m.stdout, output_truncated=m.stdout_truncated, stderr_tail=m.stderr_tail,
        exit_code=m.exit_code, timed_out=m.timed_out, memory_exceeded=m.memory_exceeded,
        killed=m.killed, error=error_kind_from_proto(m.error_kind),
        error_message=m.error_message, duration_ms=m.duration_ms, stdout_bytes=m.stdout_bytes)


class PythonExecutorServicer(pb_grpc.PythonExecutorServicer):
    def __init__(self, service: ExecutorService) -> None:
        self.service = service

    async def Execute(self, request: pb.ExecuteRequest, context) -> pb.ExecuteResult:
        result = await self.service.execute(request.code, limits_from_proto(request),
                                            client=context.peer())
        return result_to_proto(result)

    async def ExecuteBatch(self, request: pb.ExecuteBatchRequest,
                           context) -> pb.ExecuteBatchResponse:
        snippets = [(s.code, limits_from_proto(s)) for s in request.snippets]
        results = await self.service.execute_batch(snippets, client=context.peer())
        return pb.ExecuteBatchResponse(results=[result_to_proto(r) for r in results])

    async def Describe(self, request: pb.ExecutorDescribeRequest,
                       context) -> pb.ExecutorDescribeResponse:
        d = self.service.describe()
        return pb.ExecutorDescribeResponse(
            mechanism=MECHANISMS[d["mechanism"]], degraded=d["degraded"],
            guarantees=d["guarantees"], not_guaranteed=d["not_guaranteed"],
            warnings=d["warnings"], default_limits=limits_to_proto(d["default_limits"]),
            max_limits=limits_to_proto(d["max_limits"]), workers=d["workers"],
            max_code_bytes=d["max_code_bytes"], max_batch=d["max_batch"], seccomp=d["seccomp"])


def registrar(service: ExecutorService):
    """A `GrpcServer` registrar for the executor."""
    def register(server: grpc.aio.Server) -> Sequence[str]:
        pb_grpc.add_PythonExecutorServicer_to_server(PythonExecutorServicer(service), server)
        return [SERVICE_NAME]
    return register
