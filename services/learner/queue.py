"""The learner's side of the rollout queue: enqueue `RolloutJob`s on the shared jobs stream,
read this run's `GroupResult`s through the rollout service's `read_groups` (consumer group
`LEARNER_GROUP`, duplicates dropped, acknowledged)."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from paretopo.jobs import GroupResult, RolloutJob, encode
from paretopo.results import ensure_group, read_groups
from paretopo.streams import LEARNER_GROUP, WORKERS_GROUP, RolloutKeys


class RolloutQueue:
    """Jobs out, groups in, for one run; `queue_s` accumulates the time spent in Redis
    calls and (de)serialisation outside blocking waits (the price of the service split)."""

    def __init__(self, redis: Redis, keys: RolloutKeys, run_id: str, consumer: str) -> None:
        self.redis = redis
        self.keys = keys
        self.run_id = run_id
        self.consumer = consumer
        self.queue_s = 0.0
        self._recover_pending = False  # a read failed: entries may be delivered, not acked

    async def ensure_groups(self) -> None:
        await ensure_group(self.redis, self.keys.jobs, WORKERS_GROUP)
        await ensure_group(self.redis, self.keys.results(self.run_id), LEARNER_GROUP)

    async def enqueue(self, jobs: list[RolloutJob]) -> None:
        if not jobs:
            return
        start = time.perf_counter()
        async with self.redis.pipeline(transaction=False) as pipe:
            for job in jobs:
                pipe.xadd(self.keys.jobs, {"data": encode(job)})
            await pipe.execute()
        self.queue_s += time.perf_counter() - start

    async def read(self, count: int, block_ms: int) -> tuple[list[GroupResult], float]:
        """Up to `count` groups, blocking at most `block_ms`; also returns the seconds the
        call took (the caller splits it into waiting and queue overhead)."""
        start = time.perf_counter()
        try:
            if self._recover_pending:
                groups = await read_groups(self.redis, self.keys, self.run_id, self.consumer,
                                           count, block_ms, pending=True)
                self._recover_pending = bool(groups)  # until this consumer's PEL is empty
                if groups:
                    return groups, time.perf_counter() - start
            groups = await read_groups(self.redis, self.keys, self.run_id, self.consumer,
                                       count, block_ms)
        except Exception:
            self._recover_pending = True
            raise
        return groups, time.perf_counter() - start
