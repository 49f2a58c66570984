"""The executor's API over real gRPC from another process: batch order, invalid input,
Describe, health, metrics and the async client the rollout service uses."""

from __future__ import annotations

import asyncio
import urllib.request

import grpc
import pytest

from paretopo.v1 import executor_pb2 as pb
from paretopo.v1 import executor_pb2_grpc as pb_grpc
from services.tools.executor.client import ExecutorClient
from services.tools.executor.service import ErrorKind

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
], ids=["empty", "too_many", "not_utf8", "too_large", "blank", "wall_above_max", "negative"])
def test_invalid_input_is_invalid_argument(stub, request_):
    with pytest.raises(grpc.RpcError) as err:
        stub.ExecuteBatch(request_, timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()


def test_describe_names_the_mechanism(stub):
    d = stub.Describe(pb.ExecutorDescribeRequest(), timeout=10)
    assert d.mechanism == pb.ISOLATION_MECHANISM_BWRAP and not d.degraded
    assert d.seccomp and d.workers == 2 and d.guarantees and d.not_guaranteed
    assert d.default_limits.wall_s <= d.max_limits.wall_s


def test_metrics_count_calls_and_errors(stub, live_executor):
    stub.Execute(pb.ExecuteRequest(code=b"raise KeyError(1)"), timeout=30)
    text = urllib.request.urlopen(live_executor.metrics_url, timeout=10).read().decode()
    assert "executor_calls_total" in text and "executor_call_seconds_bucket" in text
    assert f'executor_errors_total{{kind="{ErrorKind.EXCEPTION.value}"}}' in text
    assert 'executor_sandbox_degraded{mechanism="bwrap"} 0.0' in text
