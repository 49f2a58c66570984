"""No value can break a run or the listing, and no request can make the archive read what it
will refuse anyway: non-finite or out-of-range configuration and outcomes are refused before
anything is written, runs poisoned by older versions do not take listings down, a write's
token and body size are checked before its body is read, and undecodable gRPC requests are
INVALID_ARGUMENT."""

from __future__ import annotations

import contextlib
import json
import socket
import time

import grpc
import httpx
import pytest
import redis

from paretopo.redis_server import EmbeddedRedis
from paretopo.v1 import archive_pb2, common_pb2
from services.archive.keys import ArchiveKeys
from tests.integration.archive.conftest import AUTH, HTTP_AUTH, TOKEN, grpc_code, start_archive

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hardening")
    server = EmbeddedRedis(tmp / "redis").start()
    try:
        archive = start_archive(server, tmp)
        try:
            yield archive
        finally:
            archive.process.stop()
    finally:
        server.kill()


def _post_raw(base: str, path: str, body: str) -> httpx.Response:
    # raw JSON text: 1e309 parses to infinity and NaN is accepted by Python's parser, which
    # json= on the client side could not even send
    return httpx.post(base + path, content=body.encode(),
                      headers={**HTTP_AUTH, "content-type": "application/json"})


@pytest.mark.parametrize(("stage1", "field"), [
    ('{"tau": 1e309}', "stage1.tau"),
    ('{"tau": NaN}', "stage1.tau"),
    ('{"tau": 1e300}', "stage1.tau"),
    ('{"amplification": 1e309}', "stage1.amplification"),
    ('{"amplification": 1e300}', "stage1.amplification"),
    ('{"beta": NaN}', "stage1.beta"),
    ('{"step_size": -Infinity}', "stage1.step_size"),
    ('{"weight_floor": NaN}', "stage1.weight_floor"),
    ('{"initial_weights": [NaN, 0.5]}', "stage1.initial_weights"),
    ('{"reference_point": [-1e300, 0.0]}', "stage1.reference_point"),
    ('{"reference_point": [0.0, 1e309]}', "stage1.reference_point"),
])
def test_rest_refuses_poisonous_config_before_writing(live, stage1, field):
    base = live.base_url
    r = _post_raw(base, "/api/v1/runs", f'{{"run_id": "poison", "stage1": {stage1}}}')
    assert r.status_code == 422, r.text
    assert field in r.json()["message"]
    assert httpx.get(f"{base}/api/v1/runs/poison").status_code == 404
    assert httpx.get(f"{base}/api/v1/runs").status_code == 200


@pytest.mark.parametrize(("settings", "field"), [
    ({"tau": float("inf")}, "tau"),
    ({"amplification": 1e309}, "amplification"),
    ({"beta": float("nan")}, "beta"),
    ({"reference_point": [-1e300, 0.0]}, "reference_point"),
    ({"initial_weights": [float("nan"), 0.4]}, "initial_weights"),
])
def test_grpc_refuses_poisonous_config_before_writing(live, settings, field):
    stub = live.stub()
    config = archive_pb2.RunConfig(run_id="gpoison", stage1=archive_pb2.Stage1Settings(**settings))
    with pytest.raises(grpc.RpcError) as info:
        stub.CreateRun(archive_pb2.CreateRunRequest(config=config), metadata=AUTH, timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in info.value.details()
    assert grpc_code(lambda: stub.GetRunState(archive_pb2.GetRunStateRequest(run_id="gpoison"),
                                              timeout=5)) == grpc.StatusCode.NOT_FOUND
    stub.ListRuns(archive_pb2.ListRunsRequest(), timeout=5)


@pytest.mark.parametrize("outcome", [
    "[1e200, 1e200]", "[1e309, 0.5]", "[NaN, 0.5]", "[1.5, 0.5]", "[-0.1, 0.5]", "[0.5, 1.0001]",
])
def test_outcomes_outside_the_unit_interval_are_refused(live, outcome):
    base = live.base_url
    httpx.post(f"{base}/api/v1/runs", json={"run_id": "unit"}, headers=HTTP_AUTH)
    r = _post_raw(base, "/api/v1/runs/unit/outcomes", f'{{"step": 1, "outcome": {outcome}}}')
    assert r.status_code == 422, r.text
    assert "outcome" in r.json()["message"]
    values = json.loads(outcome)  # Python's parser reads NaN and 1e309 too
    request = archive_pb2.ReportOutcomeRequest(
        run_id="unit", step=1, outcome=common_pb2.ObjectiveVector(values=values))
    stub = live.stub()
    with pytest.raises(grpc.RpcError) as info:
        stub.ReportOutcome(request, metadata=AUTH, timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "[0, 1]" in info.value.details()
    assert httpx.get(f"{base}/api/v1/runs/unit/history").json() == []
    state = httpx.get(f"{base}/api/v1/runs/unit/state").json()
    assert state["hypervolume"] == 0.0 and state["rho"] == 0.0


def test_a_poisoned_stored_run_does_not_break_listing(live):
    """Data an older archive wrote (it stored tau=inf as null, and an infinite hypervolume)
    is skipped by listings and named by direct reads."""
    base = live.base_url
    assert httpx.post(f"{base}/api/v1/runs", json={"run_id": "healthy"},
                      headers=HTTP_AUTH).status_code == 201
    keys = ArchiveKeys("paretopo")
    client = redis.Redis.from_url(live.redis.url)
    good_config = json.loads(client.get(keys.config("healthy")))
    good_state = json.loads(client.get(keys.state("healthy")))
    bad_config = {**good_config, "run_id": "old-tau",
                  "stage1": {**good_config["stage1"], "tau": None}}
    client.set(keys.config("old-tau"), json.dumps(bad_config))
    client.set(keys.state("old-tau"), json.dumps(good_state))
    bad_state = {**good_state, "hypervolume": float("inf"),
                 "stage1": {**good_state["stage1"], "gain": float("inf"), "rho": 1.0}}
    client.set(keys.config("old-hv"), json.dumps({**good_config, "run_id": "old-hv"}))
    client.set(keys.state("old-hv"), json.dumps(bad_state))  # writes the JSON token Infinity
    client.set(keys.config("old-json"), json.dumps({**good_config, "run_id": "old-json"}))
    client.set(keys.state("old-json"), "{not json")
    client.sadd(keys.runs, "old-tau", "old-hv", "old-json", "bad id!")

    listed = httpx.get(f"{base}/api/v1/runs")
    assert listed.status_code == 200, listed.text
    names = {run["config"]["run_id"] for run in listed.json()}
    assert "healthy" in names and not names & {"old-tau", "old-hv", "old-json"}
    reply = live.stub().ListRuns(archive_pb2.ListRunsRequest(), timeout=5)
    grpc_names = {run.config.run_id for run in reply.runs}
    assert "healthy" in grpc_names and not grpc_names & {"old-tau", "old-hv", "old-json"}

    for run_id in ("old-tau", "old-hv", "old-json"):
        r = httpx.get(f"{base}/api/v1/runs/{run_id}/front")
        assert r.status_code == 500 and run_id in r.json()["message"], r.text
        code = grpc_code(lambda run_id=run_id: live.stub().GetRunState(
            archive_pb2.GetRunStateRequest(run_id=run_id), timeout=5))
        assert code == grpc.StatusCode.DATA_LOSS
    # a report on a poisoned run is refused, not propagated
    r = httpx.post(f"{base}/api/v1/runs/old-hv/outcomes", json={"step": 5, "outcome": [0.5, 0.5]},
                   headers=HTTP_AUTH)
    assert r.status_code == 500 and "old-hv" in r.json()["message"], r.text
    assert 'paretopo_archive_unreadable_runs_total' in httpx.get(f"{base}/metrics").text
    for run_id in ("old-tau", "old-hv", "old-json"):
        client.srem(keys.runs, run_id)
    client.srem(keys.runs, "bad id!")


def _exchange(port: int, head: bytes, body_chunks, timeout: float = 5.0) -> tuple[bytes, float]:
    """Send `head` then body chunks while reading; returns the response head and how long it
    took. Stops sending as soon as the server answers (or closes)."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        response = b""
        for chunk in body_chunks:
            with contextlib.suppress(BlockingIOError):
                response += sock.recv(65536)
            if response:
                break
            try:
                sock.sendall(chunk)
            except BlockingIOError:
                time.sleep(0.01)  # the server stopped reading: wait for its answer
            except OSError:
                break
            if time.monotonic() - start > timeout:
                break
        sock.setblocking(True)
        sock.settimeout(max(0.1, timeout - (time.monotonic() - start)))
        try:
            while b"\r\n\r\n" not in response:
                data = sock.recv(65536)
                if not data:
                    break
                response += data
        except (TimeoutError, OSError):
            pass
    return response.split(b"\r\n\r\n")[0], time.monotonic() - start


def _hundred_megabytes():
    chunk = b"x" * 65536
    for _ in range(100_000_000 // len(chunk)):
        yield chunk


def test_a_huge_body_without_a_token_is_refused_before_it_is_read(live):
    port = live.http_port
    head = (b"POST /api/v1/runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000000\r\n\r\n")
    response, took = _exchange(port, head, _hundred_megabytes())
    assert response.startswith(b"HTTP/1.1 401"), response
    assert took < 3
    # with a valid token, the declared size alone gets a 413
    head = head.replace(b"Host: x\r\n", f"Host: x\r\nAuthorization: Bearer {TOKEN}\r\n".encode())
    response, took = _exchange(port, head, _hundred_megabytes())
    assert response.startswith(b"HTTP/1.1 413"), response
    assert took < 3


@pytest.mark.parametrize("path", ["/api/v1/runs", "/api/v1/runs/x/outcomes"])
def test_a_non_ascii_token_is_refused_not_crashed_on(live, path):
    for value in ("Bearer t\xe9st".encode("latin-1"), "Bearer \xff".encode("latin-1")):
        r = httpx.post(live.base_url + path, json={"run_id": "x", "step": 0, "outcome": [0, 0]},
                       headers={"Authorization": value})
        assert r.status_code == 401, r.text


def test_a_chunked_body_is_cut_off_at_the_limit(live):
    head = (f"POST /api/v1/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
    response, took = _exchange(live.http_port, head, (chunk for _ in range(1600)))
    assert response.startswith(b"HTTP/1.1 413"), response
    assert took < 3
    # the archive still serves
    assert httpx.get(f"{live.base_url}/healthz").status_code == 200


@pytest.mark.parametrize("method", ["CreateRun", "ListRuns", "GetRunState", "ReportOutcome",
                                    "UpdateOptimalCalls", "GetOptimalCalls", "SetStage"])
@pytest.mark.parametrize("garbage", [b"\xff\xff\xff\xff", b"garbage bytes!", b"\x0a\xff"])
def test_undecodable_grpc_requests_are_invalid_argument(live, method, garbage):
    channel = grpc.insecure_channel(live.grpc_target)
    call = channel.unary_unary(f"/paretopo.v1.Archive/{method}")
    with pytest.raises(grpc.RpcError) as info:
        call(garbage, metadata=AUTH, timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert "not a valid message" in info.value.details()
    channel.close()
