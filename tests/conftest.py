"""Fixtures shared by every tier: free ports and a real Redis server the test owns."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from paretopo.netutil import free_port
from paretopo.redis_server import EmbeddedRedis


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def redis_server(tmp_path) -> Iterator[EmbeddedRedis]:
    """A real redis-server on a free port, stopped (only this one) at the end of the test."""
    server = EmbeddedRedis(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.kill()
