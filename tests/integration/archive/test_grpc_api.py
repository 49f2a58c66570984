"""The archive's gRPC API over a real socket against a real Redis."""

from __future__ import annotations

import math

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from paretopo.v1 import archive_pb2, common_pb2
from tests.integration.archive.conftest import AUTH, create_run

pytestmark = pytest.mark.slow


def report(stub, run_id, step, values, metadata=AUTH):
    request = archive_pb2.ReportOutcomeRequest(
        run_id=run_id, step=step, outcome=common_pb2.ObjectiveVector(values=values))
    return stub.ReportOutcome(request, metadata=metadata, timeout=5)


def update_nstar(stub, run_id, prompts):
    request = archive_pb2.UpdateOptimalCallsRequest(run_id=run_id, prompts=[
        archive_pb2.PromptCalls(prompt_id=p, successful_calls=c) for p, c in prompts])
    return list(stub.UpdateOptimalCalls(request, metadata=AUTH, timeout=5).optimal_calls)


def code_of(fn) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        fn()
    return info.value.code(), info.value.details()


def test_create_list_and_state(archive):
    stub = archive.stub()
    info = create_run(stub, "run-a")
    assert list(info.state.weights) == pytest.approx([0.6, 0.4])
    assert info.state.stage == archive_pb2.STAGE_SCALARIZATION
    assert info.state.last_step == -1
    assert list(info.config.objectives) == ["accuracy", "tool_efficiency"]
    # identical config again is a no-op; a different one is refused
    create_run(stub, "run-a")
    code, details = code_of(lambda: create_run(stub, "run-a", beta=0.5))
    assert code == grpc.StatusCode.ALREADY_EXISTS and "run-a" in details
    create_run(stub, "run-b", beta=0.5)
    runs = stub.ListRuns(archive_pb2.ListRunsRequest(), timeout=5).runs
    assert [r.config.run_id for r in runs] == ["run-a", "run-b"]
    assert runs[1].config.stage1.beta == 0.5


def test_nstar_min_update_and_read(archive):
    stub = archive.stub()
    create_run(stub, "r")
    assert update_nstar(stub, "r", [("q1", [3, 2, 5]), ("q2", [])]) == [2, -1]
    assert update_nstar(stub, "r", [("q1", [4]), ("q2", [1]), ("q1", [1])]) == [2, 1, 1]
    got = stub.GetOptimalCalls(archive_pb2.GetOptimalCallsRequest(
        run_id="r", prompt_ids=["q1", "q2", "q3"]), timeout=5)
    assert list(got.optimal_calls) == [1, 1, -1]


def test_report_outcome_moves_state_and_is_idempotent(archive):
    stub = archive.stub()
    create_run(stub, "r", beta=0.5, tau=0.1)
    first = report(stub, "r", 0, [0.5, 0.5])
    # ΔHV of the first point over an empty archive with ref (0,0) is 0.25; G = 0.5*0.25
    assert first.delta_hv == pytest.approx(0.25)
    assert first.gain == pytest.approx(0.125)
    assert first.rho == pytest.approx(math.tanh(0.125 / 0.1))
    assert first.added and not first.replayed
    again = report(stub, "r", 0, [0.5, 0.5])
    assert again.replayed and again.gain == first.gain
    dominated = report(stub, "r", 1, [0.4, 0.4])
    assert dominated.delta_hv == 0 and not dominated.added
    assert dominated.gain == pytest.approx(0.0625)
    state = stub.GetRunState(archive_pb2.GetRunStateRequest(run_id="r"), timeout=5).state
    assert state.last_step == 1 and state.gain == pytest.approx(0.0625)
    assert [(list(p.outcome.values), p.step) for p in state.front] == [([0.5, 0.5], 0)]
    assert sum(state.weights) == pytest.approx(1.0)


def test_stage_moves_forward_only(archive):
    stub = archive.stub()
    create_run(stub, "r")
    info = stub.SetStage(archive_pb2.SetStageRequest(run_id="r", stage=2), metadata=AUTH,
                         timeout=5)
    assert info.state.stage == archive_pb2.STAGE_PARETO_RANKING
    code, _ = code_of(lambda: stub.SetStage(archive_pb2.SetStageRequest(run_id="r", stage=1),
                                            metadata=AUTH, timeout=5))
    assert code == grpc.StatusCode.FAILED_PRECONDITION


@pytest.mark.parametrize(("values", "step", "needle"), [
    ([0.5], 0, "2 objectives"),
    ([0.5, 0.5, 0.5], 0, "3 values"),
    ([float("nan"), 0.5], 0, "finite"),
    ([float("inf"), 0.5], 0, "finite"),
    ([0.5, 0.5], -3, "step"),
])
def test_invalid_reports_answer_invalid_argument_and_change_nothing(archive, values, step,
                                                                    needle):
    stub = archive.stub()
    create_run(stub, "r")
    before = stub.GetRunState(archive_pb2.GetRunStateRequest(run_id="r"), timeout=5)
    code, details = code_of(lambda: report(stub, "r", step, values))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in details
    after = stub.GetRunState(archive_pb2.GetRunStateRequest(run_id="r"), timeout=5)
    assert after == before


def test_errors_name_the_problem(archive):
    stub = archive.stub()
    code, details = code_of(lambda: report(stub, "nope", 0, [0.5, 0.5]))
    assert code == grpc.StatusCode.NOT_FOUND and "nope" in details
    code, details = code_of(lambda: create_run(stub, "bad id!"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "run_id" in details
    code, details = code_of(lambda: create_run(stub, "w", initial_weights=[0.9, 0.3]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "initial_weights" in details
    code, details = code_of(lambda: create_run(stub, "w", beta=1.5))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "beta" in details
    create_run(stub, "r")
    code, details = code_of(lambda: update_nstar(stub, "r", [("q", [-1])]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "0.." in details
    code, _ = code_of(lambda: update_nstar(stub, "r", [("", [1])]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, _ = code_of(lambda: report(stub, "r", 0, [0.5, 0.5], metadata=()))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert stub.GetRunState(archive_pb2.GetRunStateRequest(run_id="r"),
                            timeout=5).state.last_step == -1


def test_three_objectives(archive):
    stub = archive.stub()
    config = archive_pb2.RunConfig(run_id="m3", objectives=["acc", "tool", "length"],
                                   stage1=archive_pb2.Stage1Settings(
                                       initial_weights=[0.5, 0.3, 0.2],
                                       reference_point=[0, 0, 0]))
    stub.CreateRun(archive_pb2.CreateRunRequest(config=config), metadata=AUTH, timeout=5)
    reply = report(stub, "m3", 0, [0.5, 0.5, 0.5])
    assert reply.delta_hv == pytest.approx(0.125)
    assert len(reply.weights) == 3 and sum(reply.weights) == pytest.approx(1.0)


def test_health_and_reflection(archive):
    channel = grpc.insecure_channel(archive.grpc_target)
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "paretopo.v1.Archive"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    [reply] = list(stub.ServerReflectionInfo(iter([request]), timeout=5))
    names = {s.name for s in reply.list_services_response.service}
    assert "paretopo.v1.Archive" in names and "grpc.health.v1.Health" in names
