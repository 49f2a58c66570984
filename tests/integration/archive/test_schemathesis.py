"""Property-based fuzzing of the REST API from its own OpenAPI schema: no 5xx on any input,
responses conform to the schema."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from paretopo.redis_server import EmbeddedRedis
from tests.integration.archive.conftest import HTTP_AUTH, start_archive

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live_archive(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("schemathesis")
    redis = EmbeddedRedis(tmp / "redis").start()
    archive = start_archive(redis, tmp)
    # some real state, so generated reads of an existing run exercise real code paths
    httpx.post(f"{archive.base_url}/api/v1/runs", json={"run_id": "seed"}, headers=HTTP_AUTH)
    httpx.post(f"{archive.base_url}/api/v1/runs/seed/outcomes",
               json={"step": 0, "outcome": [0.4, 0.6]}, headers=HTTP_AUTH)
    try:
        yield archive
    finally:
        archive.process.stop()
        redis.kill()


def test_no_server_errors(live_archive):
    schema = schemathesis.openapi.from_url(f"{live_archive.base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=20, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case) -> None:
            case.call_and_validate(
                base_url=live_archive.base_url, headers=HTTP_AUTH,
                checks=[not_a_server_error, status_code_conformance, content_type_conformance,
                        response_schema_conformance])

        fuzz()
