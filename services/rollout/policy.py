"""Follow a run's current policy version and keep the engine's weights at it.

Before each job the worker asks for an engine at least as new as the job allows
(`job.min_policy_version`) and as new as the run's pointer says (`policy_store.current`). A
reload waits until no job is sampling (weights change between jobs, never during one); while
the pointer is older than the job needs, the job waits on the run's notification channel
(polling the pointer too, so a missed message only costs a second).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from redis.asyncio import Redis

from paretopo.errors import FailedPrecondition, Unavailable
from paretopo.jobs import RolloutJob
from paretopo.policy_store import PolicyPointer, current
from paretopo.streams import RolloutKeys
from services.rollout.engine import Engine

log = logging.getLogger(__name__)

EngineFactory = Callable[[str, int], Engine]  # (model_path, version) -> engine


class PolicyFollower:
    def __init__(self, redis: Redis, keys: RolloutKeys, factory: EngineFactory, *,
                 wait_s: float, on_load: Callable[[int], None] | None = None) -> None:
        self.redis = redis
        self.keys = keys
        self.factory = factory
        self.wait_s = wait_s
        self.on_load = on_load
        self.engine: Engine | None = None
        self.loaded: tuple[str, int] | None = None  # (run_id, version)
        self._lock = asyncio.Lock()
        self._active = 0
        self._idle = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def sampling(self, job: RolloutJob,
                       keep_alive: Callable[[], Awaitable[None]]) -> AsyncIterator[Engine]:
        """An engine loaded with the run's current policy (>= the job's minimum) for the
        duration of the block; `keep_alive` is awaited about every second while waiting."""
        async with self._lock:
            pointer = await self._wait_for(job, keep_alive)
            if self.loaded != (job.run_id, pointer.version):
                await self._drain()
                await asyncio.to_thread(self._load, pointer)
                self.loaded = (job.run_id, pointer.version)
            self._active += 1
        try:
            assert self.engine is not None
            yield self.engine
        finally:
            async with self._idle:
                self._active -= 1
                self._idle.notify_all()

    async def _drain(self) -> None:
        async with self._idle:
            await self._idle.wait_for(lambda: self._active == 0)

    def _load(self, pointer: PolicyPointer) -> None:
        start = time.perf_counter()
        if self.engine is None:
            self.engine = self.factory(pointer.path, pointer.version)
        else:
            self.engine.load_weights(pointer.path, pointer.version)
        log.info("loaded policy v%d from %s in %.1fs", pointer.version, pointer.path,
                 time.perf_counter() - start)
        if self.on_load is not None:
            self.on_load(pointer.version)

    async def _pointer(self, run_id: str) -> PolicyPointer | None:
        try:
            return await current(self.redis, self.keys, run_id)
        except FailedPrecondition:
            return None

    async def _wait_for(self, job: RolloutJob,
                        keep_alive: Callable[[], Awaitable[None]]) -> PolicyPointer:
        pointer = await self._pointer(job.run_id)
        if pointer is not None and pointer.version >= job.min_policy_version:
            return pointer
        deadline = time.monotonic() + self.wait_s
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(self.keys.policy_channel(job.run_id))
        try:
            while time.monotonic() < deadline:
                await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                pointer = await self._pointer(job.run_id)
                if pointer is not None and pointer.version >= job.min_policy_version:
                    return pointer
                await keep_alive()
        finally:
            await pubsub.aclose()
        have = "none" if pointer is None else f"v{pointer.version}"
        raise Unavailable(f"run {job.run_id!r} published no policy >= v{job.min_policy_version} "
                          f"within {self.wait_s:.0f}s (current: {have})")
