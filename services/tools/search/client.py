"""Async client of the search tool, as the rollout service uses it.

    async with SearchClient("127.0.0.1:50071") as client:
        results = await client.search(["who wrote hamlet"], top_k=3)
        block = results[0].formatted          # "<information>Doc 1(Title: ...) ...</information>"

Every call carries a deadline; UNAVAILABLE is retried by the channel's declared policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType

from paretopo.grpc_util import aio_channel
from paretopo.v1 import search_pb2, search_pb2_grpc

SERVICE = "paretopo.v1.Search"


class SearchClient:
    """`search(queries, top_k)` and `describe()` over one channel to `target` (host:port)."""

    def __init__(self, target: str, *, timeout_s: float = 30.0) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self._channel = aio_channel(target, SERVICE)
        self._stub = search_pb2_grpc.SearchStub(self._channel)

    async def search(self, queries: Sequence[str], top_k: int | None = None, *,
                     timeout_s: float | None = None) -> list[search_pb2.QueryResult]:
        """One result per query, in order; `top_k` None means the server's default (3).

        Raises `grpc.aio.AioRpcError` (INVALID_ARGUMENT for bad input, DEADLINE_EXCEEDED,
        UNAVAILABLE after retries).
        """
        request = search_pb2.SearchRequest(queries=list(queries))
        if top_k is not None:
            request.top_k = top_k
        reply = await self._stub.Search(request, timeout=self._deadline(timeout_s))
        return list(reply.results)

    async def describe(self, *, timeout_s: float | None = None) -> search_pb2.DescribeResponse:
        """Backend, model, corpus size and request limits of the server."""
        return await self._stub.Describe(search_pb2.DescribeRequest(),
                                         timeout=self._deadline(timeout_s))

    def _deadline(self, timeout_s: float | None) -> float:
        return self.timeout_s if timeout_s is None else timeout_s

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> SearchClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()
