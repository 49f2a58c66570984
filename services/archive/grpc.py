"""gRPC adapter of the archive: proto <-> models, nothing else (style rule 13)."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Sequence

import grpc
from google.protobuf import message_factory
from google.protobuf.message import DecodeError, Message
from pydantic import ValidationError

from paretopo.errors import InvalidArgument, Unauthenticated, describe_validation_error
from paretopo.v1 import archive_pb2, archive_pb2_grpc, common_pb2
from services.archive.models import OutcomeRecord, RunConfig, RunInfo
from services.archive.service import ArchiveService

SERVICE_NAME = archive_pb2.DESCRIPTOR.services_by_name["Archive"].full_name
STAGE1_SCALARS = ("beta", "tau", "step_size", "weight_floor", "amplification", "stage1_epochs")


def config_from_proto(msg: archive_pb2.RunConfig) -> RunConfig:
    stage1: dict[str, object] = {f: getattr(msg.stage1, f) for f in STAGE1_SCALARS
                                 if msg.stage1.HasField(f)}
    for field in ("initial_weights", "reference_point"):
        if values := list(getattr(msg.stage1, field)):
            stage1[field] = values
    data: dict[str, object] = {"run_id": msg.run_id, "stage1": stage1}
    if msg.objectives:
        data["objectives"] = list(msg.objectives)
    if msg.HasField("adapt_weights"):
        data["adapt_weights"] = msg.adapt_weights
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        raise InvalidArgument(f"invalid run config: {describe_validation_error(err)}") from None


def config_to_proto(config: RunConfig) -> archive_pb2.RunConfig:
    s = config.stage1
    return archive_pb2.RunConfig(
        run_id=config.run_id, objectives=config.objectives, adapt_weights=config.adapt_weights,
        stage1=archive_pb2.Stage1Settings(
            beta=s.beta, tau=s.tau, step_size=s.step_size, weight_floor=s.weight_floor,
            amplification=s.amplification, initial_weights=s.initial_weights,
            reference_point=s.reference_point, stage1_epochs=s.stage1_epochs))


def info_to_proto(info: RunInfo) -> archive_pb2.RunInfo:
    st = info.state
    return archive_pb2.RunInfo(config=config_to_proto(info.config), state=archive_pb2.RunState(
        weights=st.weights, gain=st.gain, rho=st.rho, stage=int(st.stage),
        last_step=st.last_step, hypervolume=st.hypervolume, known_prompts=st.known_prompts,
        front=[archive_pb2.FrontPoint(outcome=common_pb2.ObjectiveVector(values=p.outcome),
                                      step=p.step) for p in st.front]))


def record_to_proto(record: OutcomeRecord, replayed: bool) -> archive_pb2.ReportOutcomeResponse:
    return archive_pb2.ReportOutcomeResponse(
        delta_hv=record.delta_hv, gain=record.gain, rho=record.rho, weights=record.weights,
        hypervolume=record.hypervolume, added=record.added, replayed=replayed,
        stage=int(record.stage))


class ArchiveServicer(archive_pb2_grpc.ArchiveServicer):
    """Writes need `authorization: Bearer <token>` metadata when a write token is set."""

    def __init__(self, service: ArchiveService, *, write_token: str | None = None) -> None:
        self.service = service
        self.write_token = write_token

    def _authorize_write(self, context: grpc.aio.ServicerContext) -> None:
        if self.write_token is None:
            return
        metadata: Sequence[tuple[str, str | bytes]] = context.invocation_metadata() or ()
        given = next((v for k, v in metadata if k == "authorization"), "")
        given = given.encode() if isinstance(given, str) else given
        if not hmac.compare_digest(given, f"Bearer {self.write_token}".encode()):
            raise Unauthenticated("this write needs metadata 'authorization: Bearer <token>'")

    async def CreateRun(self, request, context):
        self._authorize_write(context)
        return info_to_proto(await self.service.create_run(config_from_proto(request.config)))

    async def ListRuns(self, request, context):
        runs = await self.service.list_runs()
        return archive_pb2.ListRunsResponse(runs=[info_to_proto(r) for r in runs])

    async def GetRunState(self, request, context):
        return info_to_proto(await self.service.run_info(request.run_id))

    async def GetOptimalCalls(self, request, context):
        values = await self.service.get_optimal_calls(request.run_id, list(request.prompt_ids))
        return archive_pb2.OptimalCallsResponse(optimal_calls=values)

    async def UpdateOptimalCalls(self, request, context):
        self._authorize_write(context)
        prompts = [(p.prompt_id, list(p.successful_calls)) for p in request.prompts]
        values = await self.service.update_optimal_calls(request.run_id, prompts)
        return archive_pb2.OptimalCallsResponse(optimal_calls=values)

    async def ReportOutcome(self, request, context):
        self._authorize_write(context)
        record, replayed = await self.service.report_outcome(
            request.run_id, request.step, list(request.outcome.values))
        return record_to_proto(record, replayed)

    async def SetStage(self, request, context):
        self._authorize_write(context)
        return info_to_proto(await self.service.set_stage(request.run_id, request.stage))


class _Undecodable:
    """Stands in for a request whose bytes are not a valid message. gRPC answers UNKNOWN when
    a deserializer raises, so the deserializer returns this and the method refuses it with
    INVALID_ARGUMENT instead."""

    def __init__(self, error: str) -> None:
        self.error = error


def _lenient(parse: Callable[[bytes], Message]) -> Callable[[bytes], Message | _Undecodable]:
    def deserialize(raw: bytes) -> Message | _Undecodable:
        try:
            return parse(raw)
        except DecodeError as err:
            return _Undecodable(str(err))

    return deserialize


def _refusing_undecodable(name: str, method: Callable[..., Awaitable[Message]]):
    async def handle(request: Message | _Undecodable, context: grpc.aio.ServicerContext,
                     ) -> Message:
        if isinstance(request, _Undecodable):
            raise InvalidArgument(f"{name}: the request is not a valid message "
                                  f"({request.error})")
        return await method(request, context)

    return handle


def method_handlers(servicer: ArchiveServicer) -> dict[str, grpc.RpcMethodHandler]:
    """The servicer's unary methods, with request parsing that cannot fail as UNKNOWN."""
    handlers = {}
    for method in archive_pb2.DESCRIPTOR.services_by_name["Archive"].methods:
        request_cls = message_factory.GetMessageClass(method.input_type)
        response_cls = message_factory.GetMessageClass(method.output_type)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            _refusing_undecodable(method.name, getattr(servicer, method.name)),
            request_deserializer=_lenient(request_cls.FromString),
            response_serializer=response_cls.SerializeToString)
    return handlers


def registrar(servicer: ArchiveServicer):
    def register(server: grpc.aio.Server) -> list[str]:
        handlers = method_handlers(servicer)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
        server.add_registered_method_handlers(SERVICE_NAME, handlers)
        return [SERVICE_NAME]

    return register
