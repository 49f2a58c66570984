"""The fast read path: cached views stay exact across writes and across REST processes,
metrics cover every process, and responses are not held back by the socket."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from paretopo.v1 import archive_pb2, common_pb2
from tests.integration.archive.conftest import AUTH, create_run, start_archive

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=[1, 3], ids=["1proc", "3procs"])
def archive3(request, tmp_path_factory):
    from paretopo.redis_server import EmbeddedRedis

    tmp = tmp_path_factory.mktemp(f"read-path-{request.param}")
    redis = EmbeddedRedis(tmp / "redis").start()
    extra = {"http_workers": str(request.param)} if request.param > 1 else {}
    try:
        archive = start_archive(redis, tmp, **extra)
        try:
            yield archive
        finally:
            archive.process.stop()
    finally:
        redis.kill()


def test_reads_see_every_write_at_once(archive3):
    """A write through gRPC (the first process) is visible to the very next REST read, on
    whichever process that read lands: views are keyed on a version bumped with each write."""
    stub = archive3.stub()
    create_run(stub, "fresh")
    base = archive3.base_url
    for step in range(20):
        y = [0.5 + step / 50, 0.5 - step / 50]  # on a line: every point joins the front
        stub.ReportOutcome(archive_pb2.ReportOutcomeRequest(
            run_id="fresh", step=step, outcome=common_pb2.ObjectiveVector(values=y)),
            metadata=AUTH, timeout=5)
        # a new connection per read, so reads spread over the REST processes
        front = httpx.get(f"{base}/api/v1/runs/fresh/front").json()
        assert step in {p["step"] for p in front["points"]}, (step, front)
        state = httpx.get(f"{base}/api/v1/runs/fresh/state").json()
        assert state["last_step"] == step
        run = httpx.get(f"{base}/api/v1/runs/fresh").json()
        assert run["state"]["last_step"] == step
    stub.SetStage(archive_pb2.SetStageRequest(run_id="fresh", stage=2), metadata=AUTH,
                  timeout=5)
    assert httpx.get(f"{base}/api/v1/runs/fresh/state").json()["stage"] == 2
    # n* changes are not state writes, yet the count shows at once too
    stub.UpdateOptimalCalls(archive_pb2.UpdateOptimalCallsRequest(
        run_id="fresh", prompts=[archive_pb2.PromptCalls(prompt_id="q", successful_calls=[1])]),
        metadata=AUTH, timeout=5)
    assert httpx.get(f"{base}/api/v1/runs/fresh/state").json()["known_prompts"] == 1
    assert httpx.get(f"{base}/api/v1/runs/fresh").json()["state"]["known_prompts"] == 1


def test_metrics_count_the_requests_of_every_process(archive3):
    base = archive3.base_url
    create_run(archive3.stub(), "counted")
    for _ in range(30):
        assert httpx.get(f"{base}/api/v1/runs/counted/front").status_code == 200
    text = httpx.get(f"{base}/metrics").text
    match = re.search(r'paretopo_archive_requests_total\{api="rest",code="200",'
                      r'method="GET /api/v1/runs/\{run_id\}/front"\} (\S+)', text)
    assert match and float(match.group(1)) >= 30, text[-2000:]


def test_responses_are_not_held_back(archive3):
    """100 sequential reads on one connection: with Nagle's algorithm on, each would wait
    ~40 ms for a delayed ACK (4 s in all)."""
    create_run(archive3.stub(), "quick")
    with httpx.Client(base_url=archive3.base_url) as client:
        client.get("/api/v1/runs/quick/front")
        start = time.perf_counter()
        for _ in range(100):
            assert client.get("/api/v1/runs/quick/front").status_code == 200
            assert client.get("/healthz").status_code == 200
        took = time.perf_counter() - start
    assert took < 2.0, f"200 sequential requests took {took:.2f} s"


def test_errors_keep_their_codes_on_the_fast_path(archive3):
    base = archive3.base_url
    r = httpx.get(f"{base}/api/v1/runs/nope/front")
    assert r.status_code == 404 and "nope" in r.json()["message"]
    assert httpx.get(f"{base}/api/v1/runs/bad%20id/front").status_code == 422


def test_unchanged_fronts_are_served_without_asking_redis(archive3):
    """Once each process's change feed is live and its view cached, front reads send no
    command to Redis; a write is still seen by the very next read."""
    import redis

    stub = archive3.stub()
    create_run(stub, "quiet")
    client = redis.Redis.from_url(archive3.redis.url)
    url = f"{archive3.base_url}/api/v1/runs/quiet/front"

    def gets() -> int:
        return int(client.info("commandstats").get("cmdstat_get", {}).get("calls", 0))

    deadline = time.monotonic() + 20
    while True:
        before = gets()
        for _ in range(30):  # a new connection each: reads spread over the processes
            assert httpx.get(url).status_code == 200
        if gets() == before:
            break
        assert time.monotonic() < deadline, "front reads kept asking Redis"
    stub.ReportOutcome(archive_pb2.ReportOutcomeRequest(
        run_id="quiet", step=0, outcome=common_pb2.ObjectiveVector(values=[0.5, 0.5])),
        metadata=AUTH, timeout=5)
    for _ in range(10):
        assert [p["step"] for p in httpx.get(url).json()["points"]] == [0]
    client.close()
