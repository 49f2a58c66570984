"""The rollout workers' side of the jobs stream (consumer group `WORKERS_GROUP`).

- New jobs are read with XREADGROUP; jobs another worker left pending for `claim_idle_ms`
  are taken over with XAUTOCLAIM; a worker touches its own jobs while it works on them, so a
  slow but live worker keeps them.
- A result is written and its job acknowledged in one MULTI/EXEC: never an ack without a result.
- `release` makes a job claimable at once (a failed attempt, or a worker shutting down).
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from paretopo.jobs import DeadLetter, GroupResult, encode
from paretopo.results import ensure_group, field
from paretopo.streams import DEAD_LETTERS_KEPT, WORKERS_GROUP, RolloutKeys


@dataclass(frozen=True)
class Delivery:
    """One job message as delivered to this worker; `attempt` counts deliveries (from 1)."""

    entry_id: str
    data: bytes | str
    attempt: int


def _id(entry_id: bytes | str) -> str:
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id


class JobQueue:
    def __init__(self, redis: Redis, keys: RolloutKeys, consumer: str, *,
                 claim_idle_ms: int) -> None:
        self.redis = redis
        self.keys = keys
        self.consumer = consumer
        self.claim_idle_ms = claim_idle_ms
        self._cursor = "0-0"

    async def ensure_group(self) -> None:
        await ensure_group(self.redis, self.keys.jobs, WORKERS_GROUP)

    async def read_new(self, count: int, block_ms: int) -> list[Delivery]:
        try:
            reply = await self.redis.xreadgroup(WORKERS_GROUP, self.consumer,
                                                {self.keys.jobs: ">"}, count=count,
                                                block=block_ms)
        except ResponseError as err:
            if "NOGROUP" not in str(err):  # the stream was deleted under us: recreate
                raise
            await self.ensure_group()
            return []
        return [Delivery(_id(i), field(f, "data") or b"", 1)
                for _, batch in reply or [] for i, f in batch]

    async def claim_stale(self, count: int) -> list[Delivery]:
        """Jobs pending on any consumer for at least `claim_idle_ms`, now ours."""
        reply = await self.redis.xautoclaim(self.keys.jobs, WORKERS_GROUP, self.consumer,
                                            self.claim_idle_ms, start_id=self._cursor,
                                            count=count)
        cursor, messages = reply[0], reply[1]
        deleted = reply[2] if len(reply) > 2 else []
        self._cursor = _id(cursor)
        if deleted:  # trimmed from the stream while pending: nothing left to do
            await self.redis.xack(self.keys.jobs, WORKERS_GROUP, *deleted)
        out = []
        for entry_id, fields in messages:
            if fields is None:
                continue
            out.append(Delivery(_id(entry_id), field(fields, "data") or b"",
                                await self._deliveries(_id(entry_id))))
        return out

    async def _deliveries(self, entry_id: str) -> int:
        pending = await self.redis.xpending_range(self.keys.jobs, WORKERS_GROUP, min=entry_id,
                                                  max=entry_id, count=1)
        return int(pending[0]["times_delivered"]) if pending else 1

    async def touch(self, entry_ids: list[str]) -> None:
        """Reset the idle time of those of `entry_ids` this worker still owns."""
        if not entry_ids:
            return
        owned = await self.redis.xpending_range(
            self.keys.jobs, WORKERS_GROUP, min="-", max="+", count=max(100, len(entry_ids)),
            consumername=self.consumer)
        mine = {_id(p["message_id"]) for p in owned} & set(entry_ids)
        if mine:
            await self.redis.xclaim(self.keys.jobs, WORKERS_GROUP, self.consumer, 0,
                                    sorted(mine), justid=True)

    async def release(self, entry_id: str) -> None:
        """Mark the job idle long enough that any worker's next claim takes it."""
        await self.redis.xclaim(self.keys.jobs, WORKERS_GROUP, self.consumer, 0, [entry_id],
                                idle=self.claim_idle_ms, justid=True)

    async def complete(self, entry_id: str, result: GroupResult) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.xadd(self.keys.results(result.run_id), {"data": encode(result)})
        pipe.xack(self.keys.jobs, WORKERS_GROUP, entry_id)
        pipe.xdel(self.keys.jobs, entry_id)  # done: the stream keeps only open work
        await pipe.execute()

    async def dead_letter(self, entry_id: str, letter: DeadLetter | dict[str, str]) -> None:
        """Move a job to the dead-letter stream (a `DeadLetter`, or raw fields for a message
        that is not a job at all) and acknowledge it."""
        fields = {"data": encode(letter)} if isinstance(letter, DeadLetter) else letter
        pipe = self.redis.pipeline(transaction=True)
        pipe.xadd(self.keys.dead_letters, fields, maxlen=DEAD_LETTERS_KEPT, approximate=True)
        pipe.xack(self.keys.jobs, WORKERS_GROUP, entry_id)
        pipe.xdel(self.keys.jobs, entry_id)
        await pipe.execute()
