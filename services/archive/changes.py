"""Which runs changed, pushed by Redis: cached fronts are served without asking Redis.

Each archive process holds one extra Redis connection that turns on server-assisted
client-side caching in broadcast mode (`CLIENT TRACKING ON REDIRECT <itself> BCAST PREFIX
<ns>:run:`, Redis >= 6) and subscribes to `__redis__:invalidate`: Redis then names every
`<ns>:run:...` key modified, whoever modified it. A view read under a `token` is current
while no change of its run's version key has arrived since the token was taken.

Why a read that trusts this still reflects every acknowledged write (also one made by
another process):
- Redis queues the invalidation in the same event-loop iteration as the write and writes
  every client's output at the end of that iteration; the writer asks Redis one more thing
  (`ArchiveStore.barrier`) before it acknowledges, so the invalidation is in this process's
  socket before the write is acknowledged to anyone.
- A read checks, without waiting, that nothing unread is in that socket (and no message is
  half-parsed); if something is, the read asks Redis instead.
- When a burst may have left part of the messages in Redis (a large chunk arrived), the
  feed sends a `PING` on the subscription and trusts nothing until its answer arrives:
  Redis answers a client in order, so by then every earlier message has arrived.
- Until the subscription is confirmed, after it drops (the tracking ends with the
  connection), after a `FLUSHALL` (a null message) or when Redis refuses the commands
  (older Redis, ACLs, TLS or a URL this does not handle): no token is current, and every
  read asks Redis as before. The feed reconnects in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.connection import Connection, UnixDomainSocketConnection

log = logging.getLogger(__name__)

CHANNEL = b"__redis__:invalidate"
# A chunk this large means the socket may have been full, so Redis may still hold the rest.
RESYNC_BYTES = 16 * 1024
MAX_TRACKED_RUNS = 100_000
RECONNECT_S = (0.2, 5.0)
REFUSED_RETRY_S = 60.0

Token = tuple[int, int]


class RespError(Exception):
    """An error reply from Redis."""


class RespParser:
    """Incremental RESP2 parser for the few reply shapes the subscription sees."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        self.buffer += data
        replies, pos = [], 0
        while True:
            parsed = _parse(self.buffer, pos)
            if parsed is None:
                break
            reply, pos = parsed
            replies.append(reply)
        del self.buffer[:pos]
        return replies


def _parse(buf: bytearray, pos: int) -> tuple[Any, int] | None:
    """One reply at `pos`: (value, next position), or None if it is not complete yet."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return None
    kind, line = buf[pos:pos + 1], bytes(buf[pos + 1:end])
    pos = end + 2
    if kind == b"+":
        return line, pos
    if kind == b"-":
        return RespError(line.decode(errors="replace")), pos
    if kind == b":":
        return int(line), pos
    if kind == b"$":
        size = int(line)
        if size < 0:
            return None, pos
        if len(buf) < pos + size + 2:
            return None
        return bytes(buf[pos:pos + size]), pos + size + 2
    if kind == b"*":
        count = int(line)
        if count < 0:
            return None, pos
        items = []
        for _ in range(count):
            parsed = _parse(buf, pos)
            if parsed is None:
                return None
            item, pos = parsed
            items.append(item)
        return items, pos
    raise ValueError(f"unexpected RESP type byte {kind!r}")


def command(*parts: str | bytes | int) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


@dataclass(frozen=True)
class Endpoint:
    """Where and how to reach the Redis of a client (TCP or unix socket, optional AUTH)."""

    host: str | None
    port: int | None
    path: str | None
    username: str | None
    password: str | None

    @classmethod
    def of(cls, client: aioredis.Redis) -> Endpoint | None:
        """The client's endpoint, or None for a connection kind this does not handle (TLS)."""
        pool = client.connection_pool
        kwargs = pool.connection_kwargs
        if pool.connection_class is UnixDomainSocketConnection:
            return cls(None, None, kwargs["path"], kwargs.get("username"),
                       kwargs.get("password"))
        if pool.connection_class is Connection:
            return cls(kwargs.get("host", "localhost"), int(kwargs.get("port", 6379)), None,
                       kwargs.get("username"), kwargs.get("password"))
        return None


class ChangeFeed(asyncio.Protocol):
    """The subscription connection and what it has told this process (see the module)."""

    def __init__(self, endpoint: Endpoint, prefix: str) -> None:
        self.endpoint = endpoint
        self.prefix = prefix.encode()
        self.live = False  # the subscription is confirmed on the current connection
        self.generation = 0  # bumped whenever messages may have been missed
        self.changes: dict[str, int] = {}  # run id -> version-key changes seen
        self._pings = 0  # sync PINGs not answered yet
        self._parser = RespParser()
        self._expect: list[str] = []  # what the replies still to come answer
        self._transport: asyncio.Transport | None = None
        self._peek: socket.socket | None = None
        self._lost: asyncio.Future[None] | None = None
        self._refused = self._refused_before = False
        self._went_live = False
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def for_client(cls, client: aioredis.Redis, prefix: str) -> ChangeFeed | None:
        """A feed on the client's Redis, or None (logged) where it cannot follow one."""
        endpoint = Endpoint.of(client)
        if endpoint is None:
            log.warning("change feed: %s connections are not followed; every read asks "
                        "Redis", client.connection_pool.connection_class.__name__)
            return None
        return cls(endpoint, prefix)

    # --- what readers ask -------------------------------------------------------------

    def token(self, run_id: str) -> Token | None:
        """Take before reading a run from Redis; None while changes may go unseen."""
        if not self.live:
            return None
        return self.generation, self.changes.get(run_id, 0)

    def current(self, token: Token | None, run_id: str) -> bool:
        """Whether no write to the run's state can have happened since `token` was taken."""
        return (token is not None and self.live and self._pings == 0
                and token == (self.generation, self.changes.get(run_id, 0))
                and not self._unread())

    def _unread(self) -> bool:
        """Bytes received but not yet parsed, or waiting in the socket."""
        if self._parser.buffer:
            return True
        if self._peek is None:
            return True
        try:
            self._peek.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return False  # nothing waiting
        except OSError:
            pass
        return True  # a byte waits, or the connection is closing

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="change-feed")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._transport is not None:
            self._transport.close()
        self._drop()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        delay = RECONNECT_S[0]
        while True:
            self._lost = loop.create_future()
            self._refused = self._went_live = False
            try:
                if self.endpoint.path is not None:
                    await loop.create_unix_connection(lambda: self, self.endpoint.path)
                else:
                    await loop.create_connection(lambda: self, self.endpoint.host,
                                                 self.endpoint.port)
            except OSError as err:
                log.debug("change feed: cannot connect (%s)", err)
            else:
                await self._lost
            if self._went_live:
                log.info("change feed: subscription lost; reads ask Redis until it is back")
                delay = RECONNECT_S[0]
            await asyncio.sleep(REFUSED_RETRY_S if self._refused else delay)
            delay = min(delay * 2, RECONNECT_S[1])

    # --- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods
        self._transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        # A second handle on the same socket, to peek at it without reading (the loop owns
        # the first one).
        self._peek = socket.socket(fileno=os.dup(sock.fileno()))
        self._parser = RespParser()
        self._expect = []
        self._pings = 0
        if self.endpoint.password is not None:
            auth = ((self.endpoint.username, self.endpoint.password) if self.endpoint.username
                    else (self.endpoint.password,))
            self._send("auth", command("AUTH", *auth))
        self._send("id", command("CLIENT", "ID"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._drop()
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    def data_received(self, data: bytes) -> None:
        try:
            replies = self._parser.feed(data)
        except ValueError as err:
            log.warning("change feed: unreadable reply (%s); reconnecting", err)
            self._abort()
            return
        for reply in replies:
            if self._peek is None:  # aborted by an earlier reply: trust nothing after it
                return
            self._on_reply(reply)
        if len(data) >= RESYNC_BYTES and self.live:
            self._send("ping", command("PING"))
            self._pings += 1

    # --- internals --------------------------------------------------------------------

    def _send(self, what: str, data: bytes) -> None:
        assert self._transport is not None
        self._expect.append(what)
        self._transport.write(data)

    def _on_reply(self, reply: Any) -> None:
        if isinstance(reply, list) and reply and reply[0] == b"message":
            self._on_invalidation(reply[2] if len(reply) > 2 else None)
            return
        what = self._expect.pop(0) if self._expect else "?"
        if isinstance(reply, RespError):
            log.log(logging.DEBUG if self._refused_before else logging.WARNING,
                    "change feed: Redis refused %s (%s); every read asks Redis (retrying "
                    "every %.0f s)", what, reply, REFUSED_RETRY_S)
            self._refused = self._refused_before = True
            self._abort()
        elif what == "id":
            self._send("tracking", command("CLIENT", "TRACKING", "ON", "REDIRECT", reply,
                                           "BCAST", "PREFIX", self.prefix))
            self._send("subscribe", command("SUBSCRIBE", CHANNEL))
        elif what == "subscribe":
            self.generation += 1
            self.changes.clear()
            self.live = self._went_live = True
        elif what == "ping":
            self._pings -= 1

    def _on_invalidation(self, keys: list[bytes] | None) -> None:
        if keys is None:  # FLUSHALL / FLUSHDB: everything may have changed
            self.generation += 1
            self.changes.clear()
            return
        for key in keys:
            if key.startswith(self.prefix) and key.endswith(b":version"):
                run_id = key[len(self.prefix):-len(b":version")].decode(errors="replace")
                self.changes[run_id] = self.changes.get(run_id, 0) + 1
        if len(self.changes) > MAX_TRACKED_RUNS:
            self.generation += 1
            self.changes.clear()

    def _abort(self) -> None:
        self._drop()
        if self._transport is not None:
            self._transport.abort()

    def _drop(self) -> None:
        if self.live:
            self.generation += 1
        self.live = False
        if self._peek is not None:
            self._peek.close()
            self._peek = None
