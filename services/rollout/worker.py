"""The rollout worker: jobs in from the shared jobs stream, one group result out per job.

Delivery guarantees (see docs/rollout.md): a result is written before its job is acked (one
MULTI/EXEC); a worker that dies leaves its jobs pending and a live worker claims them after
`claim_idle_ms` (XAUTOCLAIM); a job delivered `max_attempts` times without a result goes to
the dead-letter stream with the last error; duplicates that this allows (a slow worker
finishing a job another took over) are dropped by the consumer (`results.read_groups`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from paretopo.agent_formats import tool_format
from paretopo.errors import InvalidArgument
from paretopo.jobs import DeadLetter, GroupResult, RolloutJob, decode
from paretopo.streams import RolloutKeys
from services.rollout.agent import AgentLoop
from services.rollout.metrics import WorkerMetrics
from services.rollout.policy import EngineFactory, PolicyFollower
from services.rollout.queue import Delivery, JobQueue
from services.rollout.settings import RolloutSettings
from services.rollout.tools import ToolClients

log = logging.getLogger(__name__)


class RolloutWorker:
    """Serve jobs until `stopping` is set; `run` returns after finishing or releasing them."""

    def __init__(self, redis: Redis, settings: RolloutSettings, tools: ToolClients,
                 engine_factory: EngineFactory, metrics: WorkerMetrics | None = None) -> None:
        self.redis = redis
        self.settings = settings
        self.name = settings.worker_name
        self.keys = RolloutKeys(settings.namespace)
        self.tools = tools
        self.metrics = metrics or WorkerMetrics()
        self.queue = JobQueue(redis, self.keys, self.name, claim_idle_ms=settings.claim_idle_ms)
        self.policy = PolicyFollower(redis, self.keys, engine_factory,
                                     wait_s=settings.version_wait_s,
                                     on_load=self.metrics.policy_version.set)
        self._in_flight: dict[str, asyncio.Task] = {}
        self._jobs_done = 0
        self._last_claim = 0.0

    async def ready(self) -> bool:
        try:
            await asyncio.wait_for(self.redis.ping(), 2.0)
        except (RedisError, OSError, TimeoutError):
            self.metrics.redis_up.set(0)
            return False
        self.metrics.redis_up.set(1)
        return True

    async def run(self, stopping: asyncio.Event) -> None:
        heartbeat = asyncio.create_task(self._heartbeat(stopping), name="heartbeat")
        try:
            while not stopping.is_set():
                await self._step(stopping)
        finally:
            await self._shutdown()
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _step(self, stopping: asyncio.Event) -> None:
        free = self.settings.max_concurrent_jobs - len(self._in_flight)
        if free <= 0:
            stop_wait = asyncio.ensure_future(stopping.wait())
            await asyncio.wait([stop_wait, *self._in_flight.values()],
                               return_when=asyncio.FIRST_COMPLETED)
            stop_wait.cancel()
            return
        try:
            await self.queue.ensure_group()
            deliveries = await self._claim(free) or await self.queue.read_new(
                free, self.settings.block_ms)
            self.metrics.redis_up.set(1)
        except (RedisError, OSError) as err:
            self.metrics.redis_up.set(0)
            log.warning("redis unavailable (%s); retrying in 1s", err)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), 1.0)
            return
        for delivery in deliveries:
            task = asyncio.create_task(self._handle(delivery), name=f"job-{delivery.entry_id}")
            self._in_flight[delivery.entry_id] = task
            task.add_done_callback(lambda _, i=delivery.entry_id: self._in_flight.pop(i, None))

    async def _claim(self, count: int) -> list[Delivery]:
        """Take over stale jobs; scans (XAUTOCLAIM) every 1/20 of the claim period, so a dead
        worker's job is claimed at most 5 % after it became claimable (every half period, it
        took up to 1.5x: 80-110 s for the documented 60 s)."""
        now = time.monotonic()
        if now - self._last_claim < self.settings.claim_idle_ms / 20_000:
            return []
        self._last_claim = now
        claimed = await self.queue.claim_stale(count)
        if claimed:
            self.metrics.claimed.inc(len(claimed))
            log.info("claimed %d stale job(s)", len(claimed))
        return claimed

    async def _handle(self, delivery: Delivery) -> None:
        self.metrics.in_flight.inc()
        try:
            await self._process(delivery)
        except asyncio.CancelledError:
            with contextlib.suppress(RedisError, OSError):
                await self.queue.release(delivery.entry_id)
            self.metrics.jobs.labels("released").inc()
            raise
        except (RedisError, OSError) as err:  # the job stays pending: claimed again later
            log.warning("job %s: redis error (%s); left pending", delivery.entry_id, err)
        finally:
            self.metrics.in_flight.dec()

    async def _process(self, delivery: Delivery) -> None:
        try:
            job = decode(RolloutJob, delivery.data)
        except InvalidArgument as err:
            log.error("dead-lettering entry %s: %s", delivery.entry_id, err)
            raw = delivery.data.decode(errors="replace") if isinstance(
                delivery.data, bytes) else delivery.data
            await self.queue.dead_letter(delivery.entry_id, {
                "raw": raw, "reason": str(err), "worker": self.name})
            self.metrics.jobs.labels("dead_lettered").inc()
            return
        if delivery.attempt > self.settings.max_attempts:
            await self._dead_letter(delivery, job, "no result after "
                                    f"{delivery.attempt - 1} deliveries (worker lost each time)")
            return
        try:
            result = await self._sample(job, delivery)
        except (RedisError, OSError, asyncio.CancelledError):
            raise
        except Exception as err:
            reason = f"{type(err).__name__}: {err}"
            if delivery.attempt >= self.settings.max_attempts:
                await self._dead_letter(delivery, job, reason)
            else:
                log.warning("job %s attempt %d failed: %s", job.job_id, delivery.attempt, reason)
                self.metrics.jobs.labels("failed").inc()
                await self.queue.release(delivery.entry_id)
            return
        await self.queue.complete(delivery.entry_id, result)
        self._jobs_done += 1
        self.metrics.jobs.labels("done").inc()

    async def _dead_letter(self, delivery: Delivery, job: RolloutJob, reason: str) -> None:
        log.error("dead-lettering job %s after %d attempt(s): %s", job.job_id,
                  delivery.attempt, reason)
        letter = DeadLetter(job=job, attempts=delivery.attempt, reason=reason, worker=self.name)
        await self.queue.dead_letter(delivery.entry_id, letter)
        self.metrics.jobs.labels("dead_lettered").inc()

    async def _sample(self, job: RolloutJob, delivery: Delivery) -> GroupResult:
        fmt = tool_format(job.tool_format)
        start = time.perf_counter()

        async def keep_alive() -> None:
            await self.queue.touch([delivery.entry_id])

        tools = self.tools.with_search_top_k(job.search_top_k)
        async with self.policy.sampling(job, keep_alive) as engine:
            trajectories = await AgentLoop(engine, tools, fmt).run(
                job.prompt, job.n_samples, job.sampling)
        elapsed = time.perf_counter() - start
        self._observe(trajectories, elapsed)
        return GroupResult(job_id=job.job_id, run_id=job.run_id, kind=job.kind, step=job.step,
                           prompt_id=job.prompt_id, worker=self.name, attempt=delivery.attempt,
                           trajectories=trajectories, elapsed_s=elapsed)

    def _observe(self, trajectories: list, elapsed: float) -> None:
        m = self.metrics
        m.job_seconds.observe(elapsed)
        for t in trajectories:
            m.trajectories.labels(t.finish_reason).inc()
            m.generated_tokens.inc(sum(t.loss_mask))
            m.tool_calls.inc(t.n_tool_calls)
            m.tool_errors.inc(t.n_tool_errors)

    async def _heartbeat(self, stopping: asyncio.Event) -> None:
        """Keep this worker's jobs from looking abandoned, and announce the worker."""
        period = max(0.05, self.settings.claim_idle_ms / 3000)
        while not stopping.is_set():
            try:
                await self.queue.touch(list(self._in_flight))
                loaded = self.policy.loaded
                await self.redis.hset(self.keys.workers, self.name, json.dumps({
                    "run_id": loaded[0] if loaded else None,
                    "version": loaded[1] if loaded else None,
                    "jobs_done": self._jobs_done, "in_flight": len(self._in_flight),
                    "last_seen": time.time()}))
            except (RedisError, OSError) as err:
                log.debug("heartbeat failed: %s", err)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), period)

    async def _shutdown(self) -> None:
        """Give jobs in flight `shutdown_grace_s` to finish; release the rest."""
        tasks = list(self._in_flight.values())
        if not tasks:
            return
        log.info("stopping: %d job(s) in flight, %.0fs to finish", len(tasks),
                 self.settings.shutdown_grace_s)
        _, pending = await asyncio.wait(tasks, timeout=self.settings.shutdown_grace_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        with contextlib.suppress(RedisError, OSError):
            await self.redis.hdel(self.keys.workers, self.name)
