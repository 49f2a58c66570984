"""The change feed against a real redis-server: a cached front is trusted only while Redis
cannot have changed the run's state, on asyncio's loop and on uvloop (what the archive
runs on)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
import redis

from paretopo.redis_server import EmbeddedRedis
from services.archive.changes import ChangeFeed
from services.archive.keys import ArchiveKeys
from services.archive.store import ArchiveStore

KEYS = ArchiveKeys("ns")
Check = Callable[[ArchiveStore, ChangeFeed, redis.Redis], Awaitable[None]]


def run_on(loop_kind: str, check: Check, url: str) -> None:
    async def main() -> None:
        store = ArchiveStore.from_url(url, namespace=KEYS.namespace)
        feed = ChangeFeed.for_client(store.client, KEYS.any_run)
        assert feed is not None
        feed.start()
        writer = redis.Redis.from_url(url)
        try:
            await until(lambda: feed.live)
            await check(store, feed, writer)
        finally:
            writer.close()
            await feed.close()
            await store.close()

    if loop_kind == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        uvloop.run(main())
    else:
        asyncio.run(main())


async def until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def write_version(writer: redis.Redis, run_id: str) -> None:
    """A state write as another archive process makes it: the version bump, then the
    barrier round trip before the write counts as acknowledged. Blocking: this process's
    loop cannot read its feed meanwhile."""
    writer.incr(KEYS.version(run_id))
    writer.ping()


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_kind(request) -> str:
    return request.param


def test_a_write_elsewhere_voids_the_token_before_it_is_acknowledged(redis_server, loop_kind):
    async def check(store, feed, writer) -> None:
        token = feed.token("a")
        assert feed.current(token, "a")
        # the loop is blocked during the write: the message is still unread in the socket,
        # and that alone must void the token
        write_version(writer, "a")
        assert not feed.current(token, "a")
        await until(lambda: feed.changes.get("a") == 1)
        assert not feed.current(token, "a")
        fresh = feed.token("a")
        assert feed.current(fresh, "a")
        # other runs' tokens survive the message once it is read
        other = feed.token("b")
        write_version(writer, "a")
        await until(lambda: feed.changes.get("a") == 2)
        assert feed.current(other, "b") and not feed.current(fresh, "a")

    run_on(loop_kind, check, redis_server.url)


def test_keys_other_than_the_version_do_not_void_tokens(redis_server, loop_kind):
    async def check(store, feed, writer) -> None:
        token = feed.token("a")
        writer.hset(KEYS.nstar("a"), "q", 1)
        writer.set("elsewhere", 1)
        writer.ping()
        await until(lambda: feed.current(token, "a"), timeout_s=2)

    run_on(loop_kind, check, redis_server.url)


def test_flush_and_lost_subscription_void_every_token(redis_server, loop_kind):
    async def check(store, feed, writer) -> None:
        token, generation = feed.token("a"), feed.generation
        writer.flushall()
        await until(lambda: feed.generation > generation)
        assert not feed.current(token, "a")
        token = feed.token("a")
        assert feed.current(token, "a")
        generation = feed.generation
        assert writer.client_kill_filter(_type="pubsub") == 1
        await until(lambda: feed.generation > generation)
        assert not feed.current(token, "a")
        await until(lambda: feed.live)  # back by itself
        assert not feed.current(token, "a")
        fresh = feed.token("a")
        assert feed.current(fresh, "a")
        write_version(writer, "a")  # the new subscription has tracking on again
        assert not feed.current(fresh, "a")

    run_on(loop_kind, check, redis_server.url)


def test_a_burst_is_trusted_only_once_the_feed_caught_up(redis_server, loop_kind):
    async def check(store, feed, writer) -> None:
        tokens = {f"r{i}": feed.token(f"r{i}") for i in range(3000)}
        pipe = writer.pipeline(transaction=True)
        for run_id in tokens:
            pipe.incr(KEYS.version(run_id))
        pipe.execute()  # one message naming 3000 keys (> 100 KiB)
        writer.ping()
        assert not any(feed.current(t, r) for r, t in tokens.items())
        await until(lambda: len(feed.changes) == 3000)
        await until(lambda: feed.current(feed.token("z"), "z"))
        assert not any(feed.current(t, r) for r, t in tokens.items())

    run_on(loop_kind, check, redis_server.url)


def test_refused_tracking_leaves_every_read_to_redis(tmp_path):
    """A Redis user without the CLIENT command: the feed never goes live, no token is
    current, and nothing fails."""
    server = EmbeddedRedis(tmp_path / "redis").start()
    try:
        admin = redis.Redis.from_url(server.url)
        admin.acl_setuser("limited", enabled=True, passwords=["+secret"], keys=["*"],
                          commands=["+@all", "-client"], channels=["*"])
        url = server.url.replace("redis://", "redis://limited:secret@")

        async def main() -> None:
            store = ArchiveStore.from_url(url, namespace=KEYS.namespace)
            feed = ChangeFeed.for_client(store.client, KEYS.any_run)
            assert feed is not None
            feed.start()
            try:
                await asyncio.sleep(0.5)
                assert feed._refused and not feed.live
                assert feed.token("a") is None and not feed.current(feed.token("a"), "a")
                assert await store.ping()
            finally:
                await feed.close()
                await store.close()

        asyncio.run(main())
        admin.close()
    finally:
        server.kill()
