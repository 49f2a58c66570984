"""Reads can be closed by configuration."""

import httpx
import pytest

from tests.integration.archive.conftest import start_archive

pytestmark = pytest.mark.slow


def test_reads_need_the_read_token_when_configured(redis_server, tmp_path):
    archive = start_archive(redis_server, tmp_path, read_token="reader")
    try:
        url = f"{archive.base_url}/api/v1/runs"
        assert httpx.get(url).status_code == 401
        assert httpx.get(url, headers={"Authorization": "Bearer reader"}).json() == []
        assert httpx.get(f"{archive.base_url}/healthz").status_code == 200
    finally:
        archive.process.stop()
