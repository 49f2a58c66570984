"""The archive's REST API over a real socket: reads, token-guarded writes, JSON errors."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.archive.conftest import HTTP_AUTH, create_run

pytestmark = pytest.mark.slow


def test_reads_writes_and_errors(archive):
    base = archive.base_url
    created = httpx.post(f"{base}/api/v1/runs", json={"run_id": "web"}, headers=HTTP_AUTH)
    assert created.status_code == 201, created.text
    for step, y in enumerate([[0.2, 0.9], [0.6, 0.6], [0.9, 0.1], [0.5, 0.5]]):
        r = httpx.post(f"{base}/api/v1/runs/web/outcomes", json={"step": step, "outcome": y},
                       headers=HTTP_AUTH)
        assert r.status_code == 200, r.text
    front = httpx.get(f"{base}/api/v1/runs/web/front").json()
    assert sorted((p["step"], p["outcome"]) for p in front["points"]) == [
        (0, [0.2, 0.9]), (1, [0.6, 0.6]), (2, [0.9, 0.1])]
    hv = httpx.get(f"{base}/api/v1/runs/web/hypervolume").json()
    assert [h["step"] for h in hv["history"]] == [0, 1, 2, 3]
    # HV of {(0.2,0.9),(0.6,0.6),(0.9,0.1)} w.r.t. the origin, by strips along objective 1:
    assert hv["hypervolume"] == pytest.approx(0.2 * 0.9 + 0.4 * 0.6 + 0.3 * 0.1)
    state = httpx.get(f"{base}/api/v1/runs/web/state").json()
    assert state["stage"] == 1 and state["last_step"] == 3
    assert httpx.get(f"{base}/api/v1/runs").json()[0]["config"]["run_id"] == "web"


def test_nstar_endpoints(archive):
    stub = archive.stub()
    create_run(stub, "n")
    from tests.integration.archive.test_grpc_api import update_nstar

    update_nstar(stub, "n", [("a", [2]), ("b", [0]), ("c", [2, 3])])
    base = archive.base_url
    assert httpx.get(f"{base}/api/v1/runs/n/nstar/a").json() == {"prompt_id": "a",
                                                                 "optimal_calls": 2}
    assert httpx.get(f"{base}/api/v1/runs/n/nstar/zzz").json()["optimal_calls"] == -1
    summary = httpx.get(f"{base}/api/v1/runs/n/nstar").json()
    assert summary == {"known_prompts": 3, "distribution": {"0": 1, "2": 2}, "mean": 4 / 3}
    batch = httpx.get(f"{base}/api/v1/runs/n/nstar-batch", params={"prompt_id": ["a", "q"]})
    assert batch.json() == [2, -1]


@pytest.mark.parametrize(("method", "path", "body", "headers", "status", "needle"), [
    ("get", "/api/v1/runs/missing", None, {}, 404, "missing"),
    ("get", "/api/v1/runs/bad%20id", None, {}, 422, "run_id"),
    ("post", "/api/v1/runs", {"run_id": "x"}, {}, 401, "Bearer"),
    ("post", "/api/v1/runs", {"run_id": "x"}, {"Authorization": "Bearer wrong"}, 401, "Bearer"),
    ("post", "/api/v1/runs", {"run_id": "x", "stage1": {"tau": -1}}, HTTP_AUTH, 422, "tau"),
    ("post", "/api/v1/runs", {"run_id": "x", "colour": 1}, HTTP_AUTH, 422, "colour"),
    ("post", "/api/v1/runs/missing/outcomes", {"step": 0, "outcome": [0.1, 0.2]}, HTTP_AUTH,
     404, "missing"),
    ("get", "/no/such/page", None, {}, 404, "Not Found"),
])
def test_errors_are_json_with_the_right_code(archive, method, path, body, headers, status,
                                             needle):
    r = httpx.request(method.upper(), archive.base_url + path, json=body, headers=headers)
    assert r.status_code == status, r.text
    assert needle in r.json()["message"]


def test_bad_outcome_is_422_and_changes_nothing(archive):
    base = archive.base_url
    httpx.post(f"{base}/api/v1/runs", json={"run_id": "v"}, headers=HTTP_AUTH)
    for body in ({"step": 0, "outcome": [0.1]}, {"step": 0, "outcome": ["x", 1]},
                 {"step": -1, "outcome": [0.1, 0.1]}, {"outcome": [0.1, 0.1]}):
        r = httpx.post(f"{base}/api/v1/runs/v/outcomes", json=body, headers=HTTP_AUTH)
        assert r.status_code == 422, (body, r.text)
    r = httpx.post(f"{base}/api/v1/runs/v/outcomes", content=b"{not json",
                   headers={**HTTP_AUTH, "content-type": "application/json"})
    assert r.status_code == 422
    assert httpx.get(f"{base}/api/v1/runs/v/history").json() == []


def test_ops_endpoints(archive):
    base = archive.base_url
    assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{base}/readyz").json() == {"status": "ready"}
    httpx.get(f"{base}/api/v1/runs")
    metrics = httpx.get(f"{base}/metrics").text
    assert 'paretopo_archive_requests_total{api="rest",code="200",method="GET /api/v1/runs"}' \
        in metrics
    assert "/api/v1/runs" in httpx.get(f"{base}/openapi.json").json()["paths"]
    assert httpx.get(f"{base}/docs").status_code == 200
    assert "paretopo" in httpx.get(f"{base}/").text
