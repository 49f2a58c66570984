"""The REST API agrees with its own OpenAPI document: schemathesis' CLI runs every check it
has (not only "no 5xx": status codes, content types, headers, response schemas, 405 with
`Allow`, auth actually enforced where documented, schema-valid requests accepted) over its
coverage and fuzzing phases, against a live archive, once with open reads and once with a
read token."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from paretopo.redis_server import EmbeddedRedis
from tests.integration.archive.conftest import HTTP_AUTH, TOKEN, start_archive

pytestmark = pytest.mark.slow

READ_TOKEN = "test-read-token"
# A fixed seed keeps CI reproducible; 30 examples per operation keep a run under a minute.
SEED = "20260419"
MAX_EXAMPLES = "30"

# Two operations have constraints a JSON schema cannot state, so a schema-valid request
# may rightly be refused with 422: a run's initial weights must sum to 1 and have one entry
# per objective (as must the reference point), and an outcome must have exactly as many
# values as *that run* has objectives (2 or 3). Every other check still runs on them.
CONFIG = """
[checks]
enabled = true

[[operations]]
include-name = ["POST /api/v1/runs", "POST /api/v1/runs/{run_id}/outcomes"]
checks.positive_data_acceptance.enabled = false
"""


@pytest.fixture(scope="module", params=["open-reads", "read-token"])
def live_archive(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"schemathesis-{request.param}")
    redis = EmbeddedRedis(tmp / "redis").start()
    extra = {"read_token": READ_TOKEN} if request.param == "read-token" else {}
    try:
        archive = start_archive(redis, tmp, **extra)
        try:
            # some real state, so generated reads of an existing run exercise real code paths
            r = httpx.post(f"{archive.base_url}/api/v1/runs", json={"run_id": "seed"},
                           headers=HTTP_AUTH)
            assert r.status_code == 201, r.text
            r = httpx.post(f"{archive.base_url}/api/v1/runs/seed/outcomes",
                           json={"step": 0, "outcome": [0.4, 0.6]}, headers=HTTP_AUTH)
            assert r.status_code == 200, r.text
            yield archive, tmp, request.param
        finally:
            archive.process.stop()
    finally:
        redis.kill()


def test_every_schemathesis_check_passes(live_archive):
    archive, tmp, mode = live_archive
    config = tmp / "schemathesis.toml"
    config.write_text(CONFIG)
    # Every check is on through the config file (`--checks all` on the command line would
    # override its per-operation exceptions).
    # Writes and (when configured) reads take different tokens; schemathesis sends one
    # Authorization header, so each mode exercises the endpoints its token opens and checks
    # that the others refuse it as documented.
    token = READ_TOKEN if mode == "read-token" else TOKEN
    cmd = [sys.executable, "-c", "from schemathesis.cli import schemathesis; schemathesis()",
           "--no-color", "--config-file", str(config),
           "run", f"{archive.base_url}/openapi.json",
           "--phases", "examples,coverage,fuzzing",
           "--max-examples", MAX_EXAMPLES, "--seed", SEED, "--workers", "1",
           "--header", f"Authorization: Bearer {token}",
           "--suppress-health-check", "all", "--generation-database", "none",
           "--request-timeout", "30"]
    # run in tmp: the CLI keeps a cache of past failures in `.schemathesis/` of its working
    # directory and would replay them in later runs
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp)
    report = result.stdout[-20000:] + result.stderr[-4000:]
    assert result.returncode == 0, report
    assert "15 selected / 15 total" in result.stdout, report
