"""gRPC adapter of the search service (`paretopo.v1.Search`): protobuf in, protobuf out.

Retrieval runs in a thread pool so the event loop keeps answering health checks while a
batch is embedded. The Search request is parsed by our own deserializer: protobuf rejects a
`string` field that is not valid UTF-8 at parse time, which gRPC would report as a bare
INTERNAL error; we turn it into INVALID_ARGUMENT naming the offending query.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from google.protobuf.message import DecodeError

from paretopo.errors import InvalidArgument, ParetopoError
from paretopo.v1 import search_pb2
from services.tools.search.metrics import SearchMetrics
from services.tools.search.service import QueryResult, SearchService

SERVICE_NAME = search_pb2.DESCRIPTOR.services_by_name["Search"].full_name
BACKENDS = {"bm25": search_pb2.BACKEND_BM25, "dense": search_pb2.BACKEND_DENSE}
T = TypeVar("T")


@dataclass(frozen=True)
class Undecodable:
    """Stands in for a request that protobuf could not parse; `message` says why."""

    message: str


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = data[pos]  # IndexError on truncation, handled by the caller
        result |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return result, pos
        shift += 7


def bad_utf8_query(data: bytes) -> str | None:
    """Walk the wire format of a SearchRequest; describe the first non-UTF-8 query, if any."""
    pos, index = 0, 0
    try:
        while pos < len(data):
            key, pos = _varint(data, pos)
            field, wire = key >> 3, key & 7
            if wire == 0:
                _, pos = _varint(data, pos)
            elif wire in (1, 5):
                pos += 8 if wire == 1 else 4
            elif wire == 2:
                size, pos = _varint(data, pos)
                chunk, pos = data[pos:pos + size], pos + size
                if field == search_pb2.SearchRequest.QUERIES_FIELD_NUMBER:
                    try:
                        chunk.decode("utf-8")
                    except UnicodeDecodeError as err:
                        return (f"query {index} is not valid UTF-8 (byte 0x{chunk[err.start]:02x}"
                                f" at byte offset {err.start})")
                    index += 1
            else:
                return None
    except IndexError:
        return None
    return None


def decode_search_request(data: bytes) -> search_pb2.SearchRequest | Undecodable:
    """`SearchRequest.FromString`, but a parse failure becomes an `Undecodable` value."""
    try:
        return search_pb2.SearchRequest.FromString(data)
    except DecodeError as err:
        why = bad_utf8_query(data) or f"not a valid paretopo.v1.SearchRequest ({err})"
        return Undecodable(why)


def result_to_proto(result: QueryResult) -> search_pb2.QueryResult:
    return search_pb2.QueryResult(
        passages=[search_pb2.Passage(id=p.id, title=p.title, text=p.text, score=p.score)
                  for p in result.passages],
        formatted=result.formatted)


class SearchServicer:
    """Adapter: validates nothing itself, counts every call, delegates to `SearchService`."""

    def __init__(self, service: SearchService, metrics: SearchMetrics,
                 executor: ThreadPoolExecutor) -> None:
        self._service = service
        self._metrics = metrics
        self._executor = executor

    async def _observed(self, method: str, call: Callable[[], Awaitable[T]]) -> T:
        m = self._metrics
        m.calls.labels(method).inc()
        started = time.perf_counter()
        try:
            return await call()
        except ParetopoError as err:
            m.errors.labels(method, err.grpc_code.name).inc()
            raise
        except Exception:
            m.errors.labels(method, grpc.StatusCode.INTERNAL.name).inc()
            raise
        finally:
            m.latency.labels(method).observe(time.perf_counter() - started)

    async def Search(self, request: Any, context: grpc.aio.ServicerContext
                     ) -> search_pb2.SearchResponse:
        async def call() -> search_pb2.SearchResponse:
            if isinstance(request, Undecodable):
                raise InvalidArgument(f"bad SearchRequest: {request.message}")
            queries = list(request.queries)
            top_k = request.top_k if request.HasField("top_k") else None
            loop = asyncio.get_running_loop()
            results = await loop.run_in_executor(self._executor, self._service.search,
                                                 queries, top_k)
            self._metrics.queries.inc(len(queries))
            return search_pb2.SearchResponse(results=[result_to_proto(r) for r in results])

        return await self._observed("Search", call)

    async def Describe(self, request: search_pb2.DescribeRequest,
                       context: grpc.aio.ServicerContext) -> search_pb2.DescribeResponse:
        async def call() -> search_pb2.DescribeResponse:
            d = self._service.describe()
            return search_pb2.DescribeResponse(
                backend=BACKENDS.get(d.backend, search_pb2.BACKEND_UNSPECIFIED), model=d.model,
                num_passages=d.num_passages, default_top_k=d.limits.default_top_k,
                max_top_k=d.limits.max_top_k, max_queries=d.limits.max_queries,
                max_query_chars=d.limits.max_query_chars, corpus_sha256=d.corpus_sha256)

        return await self._observed("Describe", call)


def registrar(servicer: SearchServicer) -> Callable[[grpc.aio.Server], Sequence[str]]:
    """A `GrpcServer` registrar for `servicer` (Search parsed by `decode_search_request`)."""
    def register(server: grpc.aio.Server) -> Sequence[str]:
        handlers = {
            "Search": grpc.unary_unary_rpc_method_handler(
                servicer.Search, request_deserializer=decode_search_request,
                response_serializer=search_pb2.SearchResponse.SerializeToString),
            "Describe": grpc.unary_unary_rpc_method_handler(
                servicer.Describe, request_deserializer=search_pb2.DescribeRequest.FromString,
                response_serializer=search_pb2.DescribeResponse.SerializeToString),
        }
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
        server.add_registered_method_handlers(SERVICE_NAME, handlers)
        return [SERVICE_NAME]

    return register
