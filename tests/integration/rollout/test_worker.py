"""Rollout workers as real processes over a real Redis with the tiny testbed policy."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import httpx
import pytest
from conftest import KEYS, publish, start_worker
from redis.asyncio import Redis

from paretopo.jobs import DeadLetter, GroupResult, RolloutJob, SamplingParams, decode, encode
from paretopo.results import read_groups
from paretopo.streams import LEARNER_GROUP, WORKERS_GROUP

pytestmark = pytest.mark.slow  # every test but the last starts worker processes

PROMPT = "Tools: <python>code</python> prints to <output></output>. Q: 2+3?\n"


def job(job_id: str, *, n: int = 4, run: str = "r1", **kw) -> RolloutJob:
    sampling = kw.pop("sampling", SamplingParams(max_new_tokens=24, max_completion_tokens=60))
    return RolloutJob(job_id=job_id, run_id=run, prompt_id=f"p-{job_id}", prompt=PROMPT,
                      n_samples=n, sampling=sampling, **kw)


async def enqueue(redis: Redis, *jobs: RolloutJob) -> None:
    for j in jobs:
        await redis.xadd(KEYS.jobs, {"data": encode(j)})


async def collect(redis: Redis, want: int, timeout: float, run: str = "r1"
                  ) -> list[GroupResult]:
    got: list[GroupResult] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        got += await read_groups(redis, KEYS, run, "learner", 10, 500)
    return got


def test_groups_complete_and_well_formed(redis_server, tmp_path, workers):
    publish(redis_server.url, tmp_path / "policy", "r1", 1)
    proc, http_port = start_worker(redis_server, tmp_path, "w1")
    workers.append(proc)

    async def scenario() -> list[GroupResult]:
        redis = Redis.from_url(redis_server.url)
        await enqueue(redis, *(job(f"j{i}") for i in range(3)))
        got = await collect(redis, 3, 60)
        assert await redis.xpending(KEYS.jobs, WORKERS_GROUP) == {
            "pending": 0, "min": None, "max": None, "consumers": []}
        # done work leaves the streams: jobs deleted with their ack, results once taken
        assert await redis.xlen(KEYS.jobs) == 0
        assert await redis.xlen(KEYS.results("r1")) == 0
        await redis.aclose()
        return got

    groups = asyncio.run(scenario())
    assert sorted(g.job_id for g in groups) == ["j0", "j1", "j2"]
    for g in groups:
        assert (g.worker, g.run_id, g.attempt, g.policy_version) == ("w1", "r1", 1, 1)
        assert sorted(t.sample_index for t in g.trajectories) == [0, 1, 2, 3]
        for t in g.trajectories:
            assert len(t.loss_mask) == len(t.completion_ids) <= 60
            assert sum(t.loss_mask) >= 1 and t.finish_reason in (
                "answer", "eos", "max_tool_calls", "token_budget", "turn_limit")
    metrics = httpx.get(f"http://127.0.0.1:{http_port}/metrics").text
    assert 'paretopo_rollout_jobs_total{outcome="done"} 3.0' in metrics
    assert httpx.get(f"http://127.0.0.1:{http_port}/healthz").status_code == 200


def test_sigkill_mid_job_is_finished_by_another_worker(redis_server, tmp_path, workers):
    publish(redis_server.url, tmp_path / "policy", "r1", 1)
    slow = SamplingParams(max_new_tokens=400, max_completion_tokens=800, max_tool_calls=0)
    a, _ = start_worker(redis_server, tmp_path, "wa", "--claim-idle-ms", "1500")
    workers.append(a)

    async def scenario() -> list[GroupResult]:
        redis = Redis.from_url(redis_server.url)
        await enqueue(redis, job("big", n=48, sampling=slow))
        deadline = time.monotonic() + 30  # wait until worker A holds it
        while (await redis.xpending(KEYS.jobs, WORKERS_GROUP))["pending"] == 0:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        a.kill()  # SIGKILL, mid-job
        b, _ = start_worker(redis_server, tmp_path, "wb", "--claim-idle-ms", "1500")
        workers.append(b)
        got = await collect(redis, 1, 90)
        got += await read_groups(redis, KEYS, "r1", "learner", 10, 1500)  # nothing more
        assert await redis.scard(KEYS.consumed("r1")) == 1
        await redis.aclose()
        return got

    (group,) = asyncio.run(scenario())
    assert (group.job_id, group.worker, group.attempt) == ("big", "wb", 2)
    assert len(group.trajectories) == 48


def test_failing_job_is_dead_lettered_after_max_attempts(redis_server, tmp_path, workers):
    publish(redis_server.url, tmp_path / "policy", "r1", 1)
    proc, _ = start_worker(redis_server, tmp_path, "w1", "--claim-idle-ms", "300",
                           "--max-attempts", "3")
    workers.append(proc)

    async def scenario() -> tuple[list, list]:
        redis = Redis.from_url(redis_server.url)
        await enqueue(redis, job("bad", tool_format="nope"), job("good"))
        await redis.xadd(KEYS.jobs, {"data": b"{not json"})
        deadline = time.monotonic() + 30
        while await redis.xlen(KEYS.dead_letters) < 2:
            assert time.monotonic() < deadline, proc.log_tail()
            await asyncio.sleep(0.1)
        dead = await redis.xrange(KEYS.dead_letters)
        good = await collect(redis, 1, 30)
        pending = (await redis.xpending(KEYS.jobs, WORKERS_GROUP))["pending"]
        await redis.aclose()
        assert pending == 0
        return dead, good

    dead, good = asyncio.run(scenario())
    assert [g.job_id for g in good] == ["good"]
    fields = [f for _, f in dead]
    raw = next(f for f in fields if b"raw" in f)
    assert raw[b"raw"] == b"{not json" and b"malformed RolloutJob" in raw[b"reason"]
    letter = decode(DeadLetter, next(f for f in fields if b"data" in f)[b"data"])
    assert (letter.job.job_id, letter.attempts) == ("bad", 3)
    assert "unknown tool format 'nope'" in letter.reason


def test_version_following_and_staleness_bound(redis_server, tmp_path, workers):
    root = tmp_path / "policy"
    publish(redis_server.url, root, "r1", 1)
    proc, http_port = start_worker(redis_server, tmp_path, "w1")
    workers.append(proc)

    async def scenario() -> list[GroupResult]:
        redis = Redis.from_url(redis_server.url)
        await enqueue(redis, job("v1-job", n=2))
        (first,) = await collect(redis, 1, 60)
        await enqueue(redis, job("needs-v2", n=2, min_policy_version=2))
        await asyncio.sleep(1.5)  # the worker must wait: v2 is not published yet
        assert await read_groups(redis, KEYS, "r1", "learner", 10, 100) == []
        await asyncio.to_thread(publish, redis_server.url, root, "r1", 2, 1)
        (second,) = await collect(redis, 1, 60)
        beat = json.loads(await redis.hget(KEYS.workers, "w1"))  # the worker announced itself
        await redis.aclose()
        assert beat["last_seen"] > 0
        return [first, second]

    first, second = asyncio.run(scenario())
    assert first.policy_version == 1 and second.policy_version == 2
    assert "paretopo_rollout_policy_version 2.0" in httpx.get(
        f"http://127.0.0.1:{http_port}/metrics").text


def test_sigterm_exits_cleanly(redis_server, tmp_path, workers):
    publish(redis_server.url, tmp_path / "policy", "r1", 1)
    proc, _ = start_worker(redis_server, tmp_path, "w1")
    proc.popen.send_signal(signal.SIGTERM)
    assert proc.popen.wait(timeout=30) == 0
    assert "stopped" in proc.log_tail()


def test_read_groups_drops_duplicates(redis_server):
    async def scenario() -> tuple[list, list, int]:
        redis = Redis.from_url(redis_server.url)
        g = GroupResult(job_id="j", run_id="r1", kind="train", step=0, prompt_id="p",
                        worker="w", trajectories=[])
        stream = KEYS.results("r1")
        for _ in range(2):
            await redis.xadd(stream, {"data": encode(g)})
        await redis.xadd(stream, {"data": b"garbage"})
        first = await read_groups(redis, KEYS, "r1", "l1", 10, 100)
        await redis.xadd(stream, {"data": encode(g)})  # a late duplicate
        second = await read_groups(redis, KEYS, "r1", "l1", 10, 100)
        pending = (await redis.xpending(stream, LEARNER_GROUP))["pending"]
        await redis.aclose()
        return first, second, pending

    first, second, pending = asyncio.run(scenario())
    assert [g.job_id for g in first] == ["j"] and second == [] and pending == 0
