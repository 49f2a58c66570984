"""Reads can be closed by configuration, on every read path (the cached one included)."""

import httpx
import pytest

from tests.integration.archive.conftest import HTTP_AUTH, start_archive

pytestmark = pytest.mark.slow


def test_reads_need_the_read_token_when_configured(redis_server, tmp_path):
    archive = start_archive(redis_server, tmp_path, read_token="reader")
    try:
        url = f"{archive.base_url}/api/v1/runs"
        assert httpx.get(url).status_code == 401
        assert httpx.get(url, headers={"Authorization": "Bearer reader"}).json() == []
        assert httpx.get(f"{archive.base_url}/healthz").status_code == 200
        assert httpx.post(url, json={"run_id": "closed"}, headers=HTTP_AUTH).status_code == 201
        for suffix in ("", "/front", "/state", "/history", "/nstar"):
            run_url = f"{url}/closed{suffix}"
            assert httpx.get(run_url).status_code == 401, suffix
            assert httpx.get(run_url, headers={"Authorization": "Bearer wrong"}
                             ).status_code == 401, suffix
            assert httpx.get(run_url, headers={"Authorization": "Basic reader"}
                             ).status_code == 401, suffix
            # non-ASCII (latin-1) header bytes: refused, not a crash in the comparison
            assert httpx.get(run_url, headers={"Authorization": "Bearer r\xe9ader".encode(
                "latin-1")}).status_code == 401, suffix
            assert httpx.get(run_url, headers={"Authorization": "Bearer reader"}
                             ).status_code == 200, suffix
    finally:
        archive.process.stop()
