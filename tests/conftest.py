"""Fixtures shared by every tier: free ports and a real Redis server the test owns."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from paretopo.hf_policy import save_policy
from paretopo.netutil import free_port
from paretopo.redis_server import EmbeddedRedis
from paretopo.testbed.model import TINY_CONFIG, build_model
from paretopo.testbed.tokenizer import build_tokenizer


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


@pytest.fixture(scope="session")
def tiny_policy(tmp_path_factory) -> Path:
    """A tiny untrained testbed policy (`TINY_CONFIG`), saved once per session."""
    tokenizer = build_tokenizer()
    return save_policy(build_model(tokenizer, TINY_CONFIG, seed=0), tokenizer,
                       tmp_path_factory.mktemp("policy") / "tiny")
