"""Nothing acknowledged is lost: kill -9 of the service (and of Redis) mid-burst, restarts,
and Redis going away and coming back while the service keeps running."""

from __future__ import annotations

import threading
import time

import grpc
import httpx
import pytest

from paretopo.v1 import archive_pb2
from tests.integration.archive.conftest import create_run
from tests.integration.archive.test_grpc_api import report, update_nstar

pytestmark = pytest.mark.slow


def _burst(archive, acked_steps: list[int], acked_nstar: dict[str, int], stop: threading.Event):
    """Write until the service dies; remember only what was acknowledged."""
    stub = archive.stub()
    step = 0
    while not stop.is_set():
        try:
            report(stub, "d", step, [min(1.0, 0.01 * step), max(0.0, 1 - 0.01 * step)])
            acked_steps.append(step)
            prompt = f"q{step % 7}"
            [value] = update_nstar(stub, "d", [(prompt, [100 - step])])
            acked_nstar[prompt] = value
            step += 1
        except grpc.RpcError:
            return


def test_kill_9_mid_burst_loses_nothing_acknowledged(archive):
    create_run(archive.stub(), "d")
    acked_steps: list[int] = []
    acked_nstar: dict[str, int] = {}
    stop = threading.Event()
    writer = threading.Thread(target=_burst, args=(archive, acked_steps, acked_nstar, stop))
    writer.start()
    deadline = time.monotonic() + 30
    while len(acked_steps) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    archive.process.kill()  # SIGKILL mid-burst
    writer.join(timeout=30)
    stop.set()
    assert len(acked_steps) >= 20
    # the crash case for Redis too: only fsynced data survives, and that must be enough
    archive.redis.kill()
    archive.redis.start()
    archive.start()
    history = httpx.get(f"{archive.base_url}/api/v1/runs/d/history").json()
    stored_steps = {r["step"] for r in history}
    assert set(acked_steps) <= stored_steps
    assert stored_steps <= set(range(max(acked_steps) + 2))  # at most one unacknowledged
    stub = archive.stub()
    prompts = sorted(acked_nstar)
    values = stub.GetOptimalCalls(archive_pb2.GetOptimalCallsRequest(
        run_id="d", prompt_ids=prompts), timeout=5).optimal_calls
    for prompt, value in zip(prompts, values, strict=True):
        assert 0 <= value <= acked_nstar[prompt]
    # the recovered service keeps going from where it was
    next_step = max(stored_steps) + 1
    assert not report(stub, "d", next_step, [0.3, 0.3]).replayed


def test_graceful_restart_keeps_state(archive):
    stub = archive.stub()
    create_run(stub, "g")
    first = report(stub, "g", 0, [0.5, 0.4])
    archive.process.stop()
    archive.start()
    stub = archive.stub()
    again = report(stub, "g", 0, [0.5, 0.4])
    assert again.replayed and again.gain == first.gain
    state = stub.GetRunState(archive_pb2.GetRunStateRequest(run_id="g"), timeout=5).state
    assert state.last_step == 0 and list(state.weights) == list(first.weights)


def test_redis_away_and_back_without_restarting_the_service(archive):
    stub = archive.stub()
    create_run(stub, "r")
    archive.redis.stop()
    with pytest.raises(grpc.RpcError) as info:
        stub.GetRunState(archive_pb2.GetRunStateRequest(run_id="r"), timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "Redis" in info.value.details()
    ready = httpx.get(f"{archive.base_url}/readyz", timeout=10)
    assert ready.status_code == 503 and "Redis" in ready.json()["message"]
    runs = httpx.get(f"{archive.base_url}/api/v1/runs", timeout=10)
    assert runs.status_code == 503
    assert httpx.get(f"{archive.base_url}/healthz").status_code == 200  # alive, not ready
    archive.redis.start()
    deadline = time.monotonic() + 20
    while httpx.get(f"{archive.base_url}/readyz", timeout=10).status_code != 200:
        assert time.monotonic() < deadline, "service did not recover after Redis came back"
        time.sleep(0.2)
    state = stub.GetRunState(archive_pb2.GetRunStateRequest(run_id="r"), timeout=5).state
    assert state.last_step == -1
    assert archive.process.alive()
