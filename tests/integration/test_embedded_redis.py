"""The embedded Redis is real, durable across kill -9, and restartable on the same data."""

import redis


def test_acknowledged_write_survives_kill_9(redis_server) -> None:
    client = redis.Redis.from_url(redis_server.url)
    client.set("paretopo:test:key", "42")
    redis_server.kill()
    redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    assert client.get("paretopo:test:key") == b"42"
