"""The hostile-code suite, twice in a row, against ONE live executor in another process.

Every attack runs in round 1 and again in round 2 against the same warm pool (a state that
one call leaves to the next, or a worker one call changes, shows up in the later calls);
attacks marked `every_worker` run on each worker. Afterwards the same server must still
answer `print(1+1)` within a generous multiple of its pre-attack latency, with the same PID,
having replaced no worker, and nothing may have leaked to the host.
"""

from __future__ import annotations

import re
import socket
import statistics
import time
import urllib.request
import uuid

import grpc
import pytest

from paretopo.v1 import executor_pb2 as pb
from paretopo.v1 import executor_pb2_grpc as pb_grpc
from services.tools.executor.grpc import error_kind_from_proto
from services.tools.executor.service import ErrorKind
from tests.integration.executor.attacks import ATTACKS, Attack
from tests.integration.executor.conftest import REPO, SECRET, WORKERS

pytestmark = pytest.mark.slow

STATE: dict = {}
ROUNDS = [(r, a) for r in (1, 2) for a in ATTACKS]


@pytest.fixture(scope="module")
def stub(live_executor):
    with grpc.insecure_channel(live_executor.target) as channel:
        yield pb_grpc.PythonExecutorStub(channel)


@pytest.fixture(scope="module")
def host_traps(tmp_path_factory):
    """A canary path on the host and an abstract Unix socket the sandbox must not reach."""
    canary = tmp_path_factory.mktemp("canary") / "must-not-exist"
    name = f"paretopo-exec-test-{uuid.uuid4().hex}"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind("\0" + name)
    listener.listen()
    listener.setblocking(False)
    yield {"canary": canary, "abstract": name, "listener": listener}
    listener.close()


def run(stub, code: str, limits: dict | None = None, timeout: float = 60.0) -> pb.ExecuteResult:
    req = pb.ExecuteRequest(code=code.encode())
    if limits:
        req.limits.CopyFrom(pb.ExecLimits(**limits))
    return stub.Execute(req, timeout=timeout)


def latencies(stub, n: int = 20) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        reply = run(stub, "print(1+1)")
        out.append(time.perf_counter() - start)
        assert reply.stdout == "2\n"
    return out


def metric(live_executor, name: str) -> float:
    text = urllib.request.urlopen(live_executor.metrics_url, timeout=10).read().decode()
    return float(re.search(rf"^{name} (\S+)$", text, re.M).group(1))


def memory_fallback(stub) -> bool:
    """Whether the executor says it limits memory per process only (no memory cgroup)."""
    d = stub.Describe(pb.ExecutorDescribeRequest(), timeout=10)
    return any(line.startswith("memory: FALLBACK") for line in d.not_guaranteed)


def test_baseline(stub, live_executor):
    latencies(stub, 5)  # warm the channel
    STATE["baseline_s"] = statistics.median(latencies(stub))
    STATE["pid"] = live_executor.proc.pid
    STATE["respawns"] = metric(live_executor, "executor_worker_respawns")


@pytest.mark.parametrize("round_,attack", ROUNDS,
                         ids=[f"round{r}-{a.name}" for r, a in ROUNDS])
def test_attack(stub, live_executor, host_traps, round_: int, attack: Attack):
    code = attack.code.format(canary=host_traps["canary"], secret=SECRET, repo=REPO,
                              port=live_executor.target.rsplit(":", 1)[1],
                              abstract=host_traps["abstract"])
    if attack.needs_whole_call_memory and memory_fallback(stub):
        pytest.skip("no memory cgroup here: the executor limits memory per process only")
    for _ in range(WORKERS if attack.every_worker else 1):
        check(stub, live_executor, host_traps, attack, run(stub, code, attack.limits))


def check(stub, live_executor, host_traps, attack: Attack, reply: pb.ExecuteResult) -> None:
    kind = error_kind_from_proto(reply.error_kind)
    assert "LEAK" not in reply.stdout, reply.stdout[:2000]
    if attack.expect is not None:
        assert kind in attack.expect, (kind, reply.error_message, reply.stderr_tail[-500:])
    assert kind is not ErrorKind.WORKER_CRASHED, reply.error_message
    if attack.memory_exceeded:
        assert reply.memory_exceeded
    if attack.truncated:
        assert reply.stdout_truncated and len(reply.stdout.encode()) <= 16384
    assert not host_traps["canary"].exists()
    with pytest.raises(BlockingIOError):
        host_traps["listener"].accept()  # nothing from the sandbox reached the host socket
    assert live_executor.proc.poll() is None


def test_still_serving_after_two_rounds(stub, live_executor):
    after = statistics.median(latencies(stub))
    baseline = STATE["baseline_s"]
    assert after < 5 * baseline + 0.05, f"median {after * 1e3:.1f} ms vs {baseline * 1e3:.1f}"
    assert live_executor.proc.poll() is None and live_executor.proc.pid == STATE["pid"]
    # No attack broke a worker so that it had to be replaced (set-up failures included).
    assert metric(live_executor, "executor_worker_respawns") == STATE["respawns"]
    assert metric(live_executor, "executor_worker_setup_failures") == 0
    assert SECRET not in run(stub, "import os; print(dict(os.environ))").stdout
