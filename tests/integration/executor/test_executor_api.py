"""The executor's API over real gRPC from another process: batch order, invalid input,
Describe, health, metrics, fairness between clients, worker uids of two executors on one
host, and the async client the rollout service uses."""

from __future__ import annotations

import asyncio
import math
import os
import time
import urllib.request

import grpc
import pytest

from paretopo.v1 import executor_pb2 as pb
from paretopo.v1 import executor_pb2_grpc as pb_grpc
from services.tools.executor.client import ExecutorClient
from services.tools.executor.service import ErrorKind
from tests.integration.executor.conftest import WORKERS, start_executor, stop

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stub(live_executor):
    with grpc.insecure_channel(live_executor.target) as channel:
        yield pb_grpc.PythonExecutorStub(channel)


def test_client_batch_keeps_order_and_runs_concurrently(live_executor):
    codes = [f"import time; time.sleep(0.3); print({i} * {i})" for i in range(6)]

    async def go():
        async with ExecutorClient(live_executor.target) as client:
            return await client.execute_batch(codes, timeout_s=30)

    results = asyncio.run(go())
    assert [r.stdout for r in results] == [f"{i * i}\n" for i in range(6)]
    assert all(r.ok and not r.timed_out and not r.output_truncated for r in results)


def test_results_fields(stub):
    reply = stub.Execute(pb.ExecuteRequest(code=b"import sys\nprint('out')\n"
                                                b"print('err', file=sys.stderr)\nsys.exit(3)"),
                         timeout=30)
    assert (reply.stdout, reply.stderr_tail, reply.exit_code) == ("out\n", "err\n", 3)
    assert reply.error_kind == pb.EXEC_ERROR_KIND_NONZERO_EXIT and reply.duration_ms > 0
    syntax = stub.Execute(pb.ExecuteRequest(code=b"def ("), timeout=30)
    assert syntax.error_kind == pb.EXEC_ERROR_KIND_SYNTAX_ERROR
    numpy = stub.Execute(pb.ExecuteRequest(code=b"import numpy as np; print(np.arange(4).sum())"),
                         timeout=30)
    assert numpy.stdout == "6\n" and numpy.error_kind == pb.EXEC_ERROR_KIND_NONE


@pytest.mark.parametrize("request_", [
    pb.ExecuteBatchRequest(),
    pb.ExecuteBatchRequest(snippets=[pb.ExecuteRequest(code=b"print(1)")] * 513),
    pb.ExecuteBatchRequest(snippets=[pb.ExecuteRequest(code=b"\xff\xfe")]),
    pb.ExecuteBatchRequest(snippets=[pb.ExecuteRequest(code=b"x = 1\n" * 60000)]),
    pb.ExecuteBatchRequest(snippets=[pb.ExecuteRequest(code=b"  \n")]),
    pb.ExecuteBatchRequest(snippets=[pb.ExecuteRequest(code=b"print(1)",
                                                       limits=pb.ExecLimits(wall_s=1e6))]),
    pb.ExecuteBatchRequest(snippets=[pb.ExecuteRequest(code=b"print(1)",
                                                       limits=pb.ExecLimits(cpu_s=-1))]),
    pb.ExecuteBatchRequest(snippets=[pb.ExecuteRequest(code=b"print(1)",
                                                       limits=pb.ExecLimits(wall_s=math.nan))]),
    pb.ExecuteBatchRequest(snippets=[pb.ExecuteRequest(code=b"print(1)",
                                                       limits=pb.ExecLimits(cpu_s=math.nan))]),
    pb.ExecuteBatchRequest(snippets=[pb.ExecuteRequest(code=b"print(1)",
                                                       limits=pb.ExecLimits(cpu_s=math.inf))]),
    pb.ExecuteBatchRequest(snippets=[pb.ExecuteRequest(code=b"print(1)",
                                                       limits=pb.ExecLimits(wall_s=-math.inf))]),
], ids=["empty", "too_many", "not_utf8", "too_large", "blank", "wall_above_max", "negative",
        "wall_nan", "cpu_nan", "cpu_inf", "wall_minus_inf"])
def test_invalid_input_is_invalid_argument(stub, request_):
    with pytest.raises(grpc.RpcError) as err:
        stub.ExecuteBatch(request_, timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()


def test_nan_limit_refused_on_execute_and_server_keeps_serving(stub):
    for limits in (pb.ExecLimits(wall_s=math.nan), pb.ExecLimits(cpu_s=math.nan)):
        with pytest.raises(grpc.RpcError) as err:
            stub.Execute(pb.ExecuteRequest(code=b"print(1)", limits=limits), timeout=30)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert stub.Execute(pb.ExecuteRequest(code=b"print(1+1)"), timeout=30).stdout == "2\n"


def test_describe_names_the_mechanism(stub):
    d = stub.Describe(pb.ExecutorDescribeRequest(), timeout=10)
    assert d.mechanism == pb.ISOLATION_MECHANISM_BWRAP and not d.degraded
    assert d.seccomp and d.workers == WORKERS and d.guarantees and d.not_guaranteed
    assert d.default_limits.wall_s <= d.max_limits.wall_s
    # How memory is limited is said, like the mechanism: a guarantee, or a stated fallback.
    memory = [line for line in [*d.guarantees, *d.not_guaranteed] if line.startswith("memory:")]
    assert len(memory) == 1
    if "FALLBACK" in memory[0]:
        assert any("MEMORY LIMIT DEGRADED" in w for w in d.warnings)


def test_metrics_count_calls_and_errors(stub, live_executor):
    stub.Execute(pb.ExecuteRequest(code=b"raise KeyError(1)"), timeout=30)
    text = urllib.request.urlopen(live_executor.metrics_url, timeout=10).read().decode()
    assert "executor_calls_total" in text and "executor_call_seconds_bucket" in text
    assert f'executor_errors_total{{kind="{ErrorKind.EXCEPTION.value}"}}' in text
    assert 'executor_sandbox_degraded{mechanism="bwrap"} 0.0' in text
    modes = [line for line in text.splitlines()
             if line.startswith("executor_memory_limit_mode{") and line.endswith(" 1.0")]
    assert len(modes) == 1, modes
    assert "executor_worker_setup_failures 0.0" in text


def _own_connection(target: str) -> grpc.aio.Channel:
    # A connection of its own (gRPC would share one between channels of one process): two
    # clients, as two rollout workers would be.
    return grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])


def test_one_clients_batch_does_not_hold_up_another_client(live_executor):
    """Client A's batch of long snippets must not make client B's print(1+1) wait for it:
    the pool keeps a worker for clients with nothing running."""
    sleeper = pb.ExecuteRequest(code=b"import time; time.sleep(2.5)",
                                limits=pb.ExecLimits(wall_s=10))

    async def go() -> tuple[float, float]:
        async with _own_connection(live_executor.target) as a, \
                _own_connection(live_executor.target) as b:
            stub_a, stub_b = pb_grpc.PythonExecutorStub(a), pb_grpc.PythonExecutorStub(b)
            await stub_b.Execute(pb.ExecuteRequest(code=b"print(0)"), timeout=30)  # connect
            start = time.perf_counter()
            batch = asyncio.ensure_future(stub_a.ExecuteBatch(
                pb.ExecuteBatchRequest(snippets=[sleeper] * (2 * WORKERS)), timeout=120))
            await asyncio.sleep(0.5)  # the batch holds every worker it may have
            asked = time.perf_counter()
            reply = await stub_b.Execute(pb.ExecuteRequest(code=b"print(1+1)"), timeout=60)
            waited = time.perf_counter() - asked
            assert reply.stdout == "2\n"
            results = (await batch).results
            assert [r.error_kind for r in results] == [pb.EXEC_ERROR_KIND_NONE] * len(results)
            return waited, time.perf_counter() - start

    waited, batch_s = asyncio.run(go())
    # Without the reservation B waits ~2 s for the first sleeper to end (and for the whole
    # batch under first-come-first-served): it must be served at once instead.
    assert waited < 1.0, f"print(1+1) waited {waited:.2f}s behind another client's batch"
    assert batch_s < 2.5 * 2 * WORKERS, "the batch still ran more than one at a time"


def _worker_uids(target: str) -> set[int]:
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.PythonExecutorStub(channel)
        # Sequential calls go to the least recently used worker: 2 rounds cover every one.
        return {int(stub.Execute(pb.ExecuteRequest(code=b"import os; print(os.getuid())"),
                                 timeout=30).stdout) for _ in range(2 * WORKERS)}


@pytest.mark.skipif(os.geteuid() != 0, reason="worker uids are host uids only as root")
def test_two_executors_on_one_host_never_share_a_worker_uid(live_executor, tmp_path):
    other = start_executor(tmp_path)  # same default --uid-base as the module's executor
    try:
        mine, theirs = _worker_uids(live_executor.target), _worker_uids(other.target)
    finally:
        stop(other.proc)
    assert len(mine) == len(theirs) == WORKERS, (mine, theirs)
    assert not mine & theirs, f"shared worker uids {sorted(mine & theirs)}"
    assert 0 not in mine | theirs
