"""The learner's side of the results stream: read finished groups, drop duplicates, ack.

A job can produce two results (a worker that was presumed dead finishes after another
claimed its job); the consumer keeps the first and drops the rest, by job id, with the run's
consumed-set. The SADD of every job id and the XACK and XDEL of every entry happen in one
MULTI/EXEC, so either all take effect or none does. Deleting what was taken keeps the stream
to what is still to be read: a paper run's results would otherwise grow to tens of GB.
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from paretopo.errors import InvalidArgument
from paretopo.jobs import GroupResult, decode
from paretopo.streams import LEARNER_GROUP, RolloutKeys

log = logging.getLogger(__name__)


def field(fields: dict, name: str) -> bytes | str | None:
    """A stream entry's field, whether the client decodes responses or not."""
    value = fields.get(name.encode())
    return fields.get(name) if value is None else value


async def ensure_group(redis: Redis, stream: str, group: str) -> None:
    """Create `group` on `stream` (and the stream) reading from the start; idempotent."""
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as err:
        if "BUSYGROUP" not in str(err):
            raise


async def read_groups(redis: Redis, keys: RolloutKeys, run_id: str, consumer: str,
                      count: int, block_ms: int, *, pending: bool = False
                      ) -> list[GroupResult]:
    """Up to `count` new groups of `run_id`, waiting at most `block_ms` (None: don't block).

    Duplicates (a job id already consumed, now or earlier) and malformed entries are dropped
    and acknowledged; what is returned is acknowledged too, so the caller owns it.
    `pending=True` reads instead the entries delivered to `consumer` but never acknowledged
    (a connection lost between the read and the ack leaves them there).
    """
    stream = keys.results(run_id)
    start = "0" if pending else ">"
    try:
        reply = await redis.xreadgroup(LEARNER_GROUP, consumer, {stream: start},
                                       count=count, block=None if pending else block_ms)
    except ResponseError as err:
        if "NOGROUP" not in str(err):
            raise
        await ensure_group(redis, stream, LEARNER_GROUP)
        reply = await redis.xreadgroup(LEARNER_GROUP, consumer, {stream: start},
                                       count=count, block=None if pending else block_ms)
    entries = [entry for _, batch in reply or [] for entry in batch]
    if not entries:
        return []
    groups: list[GroupResult] = []
    for entry_id, fields in entries:
        try:
            groups.append(decode(GroupResult, field(fields, "data") or b""))
        except InvalidArgument as err:
            log.error("dropping malformed result %s on %s: %s", entry_id, stream, err)
    pipe = redis.pipeline(transaction=True)
    for group in groups:
        pipe.sadd(keys.consumed(run_id), group.job_id)
    ids = [entry_id for entry_id, _ in entries]
    pipe.xack(stream, LEARNER_GROUP, *ids)
    pipe.xdel(stream, *ids)  # the learner is the only reader: taken means done, free the memory
    added = (await pipe.execute())[:-2]
    fresh = [g for g, new in zip(groups, added, strict=True) if new]
    if len(fresh) < len(groups):
        log.info("dropped %d duplicate result(s) on %s", len(groups) - len(fresh), stream)
    return fresh
