"""Riding out a dependency restart: retry the learner's calls to Redis and the archive with
backoff while an outage lasts no longer than a budget, then give up with one clear line.

A restart of Redis or of the archive (a rolling update, a crashed pod) takes seconds; a run
of hours must not end because of it. Only transient failures are retried (no connection, no
answer in time, Redis still loading its data); an answer that refuses the request is not.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc
from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from paretopo.errors import Unavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

_TRANSIENT_GRPC = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
_TRANSIENT_REDIS = (RedisConnectionError, RedisTimeoutError, BusyLoadingError, OSError)


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` says the dependency is (for now) unreachable, not that it refused."""
    if isinstance(exc, grpc.aio.AioRpcError):
        return exc.code() in _TRANSIENT_GRPC
    return isinstance(exc, _TRANSIENT_REDIS)


class OutageGuard:
    """Retries transient failures of one dependency with exponential backoff (0.2 s doubling
    to 5 s) until `budget_s` of continuous outage; then raises `Unavailable`."""

    def __init__(self, name: str, budget_s: float, *, first_delay_s: float = 0.2,
                 max_delay_s: float = 5.0) -> None:
        self.name = name
        self.budget_s = budget_s
        self.first_delay_s = first_delay_s
        self.max_delay_s = max_delay_s
        self.outages = 0  # outages ridden out, for the metrics and the tests

    async def call(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """`await attempt()` until it succeeds, retrying transient failures."""
        started: float | None = None
        delay = self.first_delay_s
        while True:
            try:
                result = await attempt()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                now = time.monotonic()
                started = now if started is None else started
                if now - started >= self.budget_s:
                    raise Unavailable(
                        f"{self.name} unreachable for {now - started:.0f} s ({what}: "
                        f"{_brief(exc)}); the outage budget is {self.budget_s:.0f} s "
                        "(services.outage_budget_s). The run stopped with a checkpoint: "
                        "run the same command again to resume.") from None
                if delay == self.first_delay_s:
                    log.warning("%s unreachable (%s: %s); retrying for up to %.0f s", self.name,
                                what, _brief(exc), self.budget_s)
                await asyncio.sleep(delay)
                delay = min(2 * delay, self.max_delay_s)
                continue
            if started is not None:
                self.outages += 1
                log.warning("%s reachable again after %.1f s (%s)", self.name,
                            time.monotonic() - started, what)
            return result


def _brief(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name} {exc.details()}"
    return f"{type(exc).__name__}: {exc}"
