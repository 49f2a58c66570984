"""Durable archive state in Redis (redis-py asyncio).

Durability: every method returns only after Redis has acknowledged the write, and the server
is expected to run with append-only persistence (`appendfsync always` for the embedded one), so
an acknowledged write survives a `kill -9` of the service or of Redis.

Atomicity: n* is lowered by a Lua script (an atomic server-side min, safe under any number of
concurrent writers); a report is applied with optimistic locking (WATCH/MULTI) on the state and
history keys, so two reports never interleave and a retried step is answered from history.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.exceptions import WatchError

from paretopo.errors import AlreadyExists, FailedPrecondition, NotFound, Unavailable
from services.archive.keys import ArchiveKeys

# KEYS[1] = n* hash; ARGV = prompt_id, candidate, prompt_id, candidate, ...
# candidate -1 means "no successful trajectory": read without writing.
NSTAR_MIN_LUA = """
local out = {}
for i = 1, #ARGV, 2 do
  local cand = tonumber(ARGV[i + 1])
  -- HGET answers false (not nil) for a missing field
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if cur then cur = tonumber(cur) else cur = nil end
  if cand >= 0 and (cur == nil or cand < cur) then
    redis.call('HSET', KEYS[1], ARGV[i], cand)
    cur = cand
  end
  out[#out + 1] = cur or -1
end
return out
"""

# KEYS = runs set, config key, state key, version key; ARGV = run id, config json, initial
# state json, initial version. Answers 1 when created, 0 when the same config already
# existed, -1 when another did.
CREATE_RUN_LUA = """
local existing = redis.call('GET', KEYS[2])
if existing then
  if existing == ARGV[2] then return 0 end
  return -1
end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SET', KEYS[3], ARGV[3])
redis.call('SET', KEYS[4], ARGV[4])
redis.call('SADD', KEYS[1], ARGV[1])
return 1
"""

MAX_REPORT_RETRIES = 50

StateUpdate = Callable[[dict[str, Any]], tuple[dict[str, Any], dict[str, Any]]]


@asynccontextmanager
async def redis_errors() -> AsyncIterator[None]:
    """Turn Redis being unreachable into `Unavailable` (gRPC UNAVAILABLE / HTTP 503)."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError) as err:
        reason = f"{type(err).__name__}: {err}"
        raise Unavailable(f"Redis is unreachable ({reason}); retry later") from err


class ArchiveStore:
    """Typed access to one namespace of archive keys."""

    def __init__(self, client: aioredis.Redis, keys: ArchiveKeys) -> None:
        self.client = client
        self.keys = keys
        self._nstar_min = client.register_script(NSTAR_MIN_LUA)
        self._create_run = client.register_script(CREATE_RUN_LUA)

    @classmethod
    def from_url(cls, url: str, *, namespace: str = "paretopo", timeout_s: float = 2.0,
                 ) -> ArchiveStore:
        client = aioredis.Redis.from_url(
            url, decode_responses=True, socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s, health_check_interval=10,
        )
        return cls(client, ArchiveKeys(namespace))

    async def close(self) -> None:
        await self.client.aclose()

    async def ping(self) -> bool:
        async with redis_errors():
            return bool(await self.client.ping())

    async def create_run(self, run_id: str, config_json: str, state_json: str) -> bool:
        """Create a run; True if new, False if it existed with this exact config."""
        keys = [self.keys.runs, self.keys.config(run_id), self.keys.state(run_id),
                self.keys.version(run_id)]
        # A random first version: a run re-created under the same id (after Redis lost its
        # data, say) never shows a version that a reader cached for the old one.
        args = [run_id, config_json, state_json, secrets.randbits(48)]
        async with redis_errors():
            created = int(await self._create_run(keys=keys, args=args))
        if created < 0:
            raise AlreadyExists(f"run {run_id!r} already exists with a different config")
        if created:
            await self.barrier()
        return created == 1

    async def barrier(self) -> None:
        """One more round trip after a write, before it is acknowledged: Redis writes out
        everything a command queued (the change feeds' invalidations included) before it
        reads the next command, so once this returns every feed has the write's message in
        its socket (`services.archive.changes`)."""
        async with redis_errors():
            await self.client.ping()

    async def run_ids(self) -> list[str]:
        async with redis_errors():
            return sorted(await self.client.smembers(self.keys.runs))

    async def config_and_state(self, run_id: str,
                               ) -> tuple[str, dict[str, Any], int, int | None]:
        """The run's config JSON, its state, how many prompts have an n* and the state's
        version (None for runs stored before versions existed): one round trip, and the
        state and version are read together (MGET is atomic)."""
        async with redis_errors(), self.client.pipeline(transaction=False) as pipe:
            pipe.mget([self.keys.config(run_id), self.keys.state(run_id),
                       self.keys.version(run_id)])
            pipe.hlen(self.keys.nstar(run_id))
            (config_json, state_json, version), known = await pipe.execute()
        if config_json is None or state_json is None:
            raise NotFound(f"unknown run {run_id!r}; create it first or list runs")
        try:
            state = json.loads(state_json)
        except ValueError:
            state = {}  # the service reports it as unreadable, naming the run
        return config_json, state, int(known), _version(version)

    async def version(self, run_id: str) -> int | None:
        """The state's version alone (one GET): what a cached front is keyed on."""
        async with redis_errors():
            return _version(await self.client.get(self.keys.version(run_id)))

    async def version_and_known(self, run_id: str) -> tuple[int | None, int]:
        """(state version, number of prompts with an n*): what a cached view is keyed on."""
        async with redis_errors(), self.client.pipeline(transaction=False) as pipe:
            pipe.get(self.keys.version(run_id))
            pipe.hlen(self.keys.nstar(run_id))
            version, known = await pipe.execute()
        return _version(version), int(known)

    async def nstar_min(self, run_id: str, pairs: list[tuple[str, int]]) -> list[int]:
        """Atomically lower n* with each (prompt, candidate); -1 candidates only read."""
        args: list[str | int] = []
        for prompt_id, candidate in pairs:
            args.extend((prompt_id, candidate))
        async with redis_errors():
            return [int(v) for v in await self._nstar_min(keys=[self.keys.nstar(run_id)],
                                                          args=args)]

    async def nstar_get(self, run_id: str, prompt_ids: list[str]) -> list[int]:
        if not prompt_ids:
            return []
        async with redis_errors():
            values = await self.client.hmget(self.keys.nstar(run_id), prompt_ids)
        return [-1 if v is None else int(v) for v in values]

    async def nstar_values(self, run_id: str) -> list[int]:
        async with redis_errors():
            return [int(v) for v in await self.client.hvals(self.keys.nstar(run_id))]

    async def history(self, run_id: str) -> list[dict[str, Any]]:
        async with redis_errors():
            raw = await self.client.hvals(self.keys.history(run_id))
        return sorted((json.loads(r) for r in raw), key=lambda r: r["step"])

    async def apply_report(self, run_id: str, step: int, update: StateUpdate,
                           ) -> tuple[dict[str, Any], bool]:
        """Apply `update(state) -> (new_state, record)` for `step` exactly once.

        Returns (record, replayed). A step already in history returns its stored record
        without calling `update`; a step older than the last applied one is refused.
        """
        state_key, history_key = self.keys.state(run_id), self.keys.history(run_id)
        async with redis_errors(), self.client.pipeline(transaction=True) as pipe:
            for _ in range(MAX_REPORT_RETRIES):
                try:
                    await pipe.watch(state_key, history_key)
                    stored = await pipe.hget(history_key, str(step))
                    if stored is not None:
                        await pipe.unwatch()
                        return json.loads(stored), True
                    state_json = await pipe.get(state_key)
                    if state_json is None:
                        raise NotFound(f"unknown run {run_id!r}; create it first or list runs")
                    state = json.loads(state_json)
                    if step <= state["stage1"]["step"]:
                        raise FailedPrecondition(
                            f"step {step} is not after the last reported step "
                            f"{state['stage1']['step']} of run {run_id!r}; steps must increase")
                    new_state, record = update(state)
                    pipe.multi()
                    pipe.set(state_key, json.dumps(new_state))
                    pipe.hset(history_key, str(step), json.dumps(record))
                    pipe.incr(self.keys.version(run_id))
                    await pipe.execute()
                    await self.barrier()
                    return record, False
                except WatchError:
                    continue
        raise Unavailable(f"report for step {step} of run {run_id!r} kept conflicting; retry")

    async def set_stage(self, run_id: str, stage: int) -> dict[str, Any]:
        state_key = self.keys.state(run_id)
        async with redis_errors(), self.client.pipeline(transaction=True) as pipe:
            for _ in range(MAX_REPORT_RETRIES):
                try:
                    await pipe.watch(state_key)
                    state_json = await pipe.get(state_key)
                    if state_json is None:
                        raise NotFound(f"unknown run {run_id!r}; create it first or list runs")
                    state = json.loads(state_json)
                    if stage < state["stage"]:
                        raise FailedPrecondition(
                            f"run {run_id!r} is in stage {state['stage']}; stages never go back")
                    state["stage"] = stage
                    pipe.multi()
                    pipe.set(state_key, json.dumps(state))
                    pipe.incr(self.keys.version(run_id))
                    await pipe.execute()
                    await self.barrier()
                    return state
                except WatchError:
                    continue
        raise Unavailable(f"stage change of run {run_id!r} kept conflicting; retry")


def _version(raw: str | None) -> int | None:
    try:
        return None if raw is None else int(raw)
    except ValueError:
        return None
