"""Rollout integration fixtures: a published tiny policy, workers as child processes."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from paretopo.hf_policy import save_policy
from paretopo.netutil import free_port
from paretopo.policy_store import PolicyPointer, point_to, write_version
from paretopo.process import ManagedProcess
from paretopo.redis_server import EmbeddedRedis
from paretopo.streams import RolloutKeys
from paretopo.testbed.model import TINY_CONFIG, build_model
from paretopo.testbed.tokenizer import build_tokenizer

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "unit" / "rollout"))  # scripted.py
KEYS = RolloutKeys()


def publish(redis_url: str, root: Path, run_id: str, version: int, seed: int = 0) -> Path:
    """Write a tiny policy as `version` and point the run at it."""
    tok = build_tokenizer()
    path = write_version(root, version,
                         lambda d: save_policy(build_model(tok, TINY_CONFIG, seed=seed), tok, d))

    async def point() -> None:
        redis = Redis.from_url(redis_url)
        await point_to(redis, KEYS, run_id, PolicyPointer(version, str(path)))
        await redis.aclose()

    asyncio.run(point())
    return path


def start_worker(redis: EmbeddedRedis, log_dir: Path, name: str, *args: str
                 ) -> tuple[ManagedProcess, int]:
    http_port = free_port()
    proc = ManagedProcess.python_module(
        name, "services.rollout", "--redis-url", redis.url, "--worker-name", name,
        "--http-port", str(http_port), "--http-host", "127.0.0.1", "--threads", "1", *args,
        log_path=log_dir / f"{name}.log", cwd=str(REPO))
    proc.start()
    proc.wait_until(lambda: httpx.get(f"http://127.0.0.1:{http_port}/readyz",
                                      timeout=1).status_code == 200, timeout=60)
    return proc, http_port


@pytest.fixture
def workers(redis_server, tmp_path) -> Iterator[list[ManagedProcess]]:
    """Workers a test starts are appended here and stopped at the end."""
    started: list[ManagedProcess] = []
    yield started
    for proc in started:
        proc.stop(grace=5)
