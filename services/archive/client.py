"""Async gRPC client of the archive, for the learner and tools. Every call has a deadline."""

from __future__ import annotations

from collections.abc import Sequence

from paretopo.grpc_util import aio_channel
from paretopo.v1 import archive_pb2, archive_pb2_grpc, common_pb2
from services.archive.grpc import SERVICE_NAME


class ArchiveClient:
    def __init__(self, target: str, *, token: str | None = None, timeout_s: float = 5.0) -> None:
        self.channel = aio_channel(target, SERVICE_NAME)
        self.stub = archive_pb2_grpc.ArchiveStub(self.channel)
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.timeout_s = timeout_s

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> ArchiveClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def create_run(self, config: archive_pb2.RunConfig) -> archive_pb2.RunInfo:
        return await self.stub.CreateRun(archive_pb2.CreateRunRequest(config=config),
                                         timeout=self.timeout_s, metadata=self.metadata)

    async def run_state(self, run_id: str) -> archive_pb2.RunInfo:
        return await self.stub.GetRunState(archive_pb2.GetRunStateRequest(run_id=run_id),
                                           timeout=self.timeout_s)

    async def list_runs(self) -> list[archive_pb2.RunInfo]:
        reply = await self.stub.ListRuns(archive_pb2.ListRunsRequest(), timeout=self.timeout_s)
        return list(reply.runs)

    async def optimal_calls(self, run_id: str, prompt_ids: Sequence[str]) -> list[int]:
        reply = await self.stub.GetOptimalCalls(
            archive_pb2.GetOptimalCallsRequest(run_id=run_id, prompt_ids=prompt_ids),
            timeout=self.timeout_s)
        return list(reply.optimal_calls)

    async def update_optimal_calls(
        self, run_id: str, successful_calls: Sequence[tuple[str, Sequence[int]]]
    ) -> list[int]:
        """Lower n* with each prompt's successful call counts; returns n* to use (-1 unknown)."""
        request = archive_pb2.UpdateOptimalCallsRequest(run_id=run_id, prompts=[
            archive_pb2.PromptCalls(prompt_id=p, successful_calls=list(c))
            for p, c in successful_calls])
        reply = await self.stub.UpdateOptimalCalls(request, timeout=self.timeout_s,
                                                   metadata=self.metadata)
        return list(reply.optimal_calls)

    async def report_outcome(self, run_id: str, step: int, outcome: Sequence[float],
                             ) -> archive_pb2.ReportOutcomeResponse:
        request = archive_pb2.ReportOutcomeRequest(
            run_id=run_id, step=step, outcome=common_pb2.ObjectiveVector(values=list(outcome)))
        return await self.stub.ReportOutcome(request, timeout=self.timeout_s,
                                             metadata=self.metadata)

    async def set_stage(self, run_id: str, stage: int) -> archive_pb2.RunInfo:
        return await self.stub.SetStage(archive_pb2.SetStageRequest(run_id=run_id, stage=stage),
                                        timeout=self.timeout_s, metadata=self.metadata)
