"""The search API over real gRPC, against a BM25 server of 9,654 real passages running in
another process."""

from __future__ import annotations

import asyncio
import socket

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from paretopo.v1 import search_pb2
from services.tools.search.client import SearchClient

pytestmark = pytest.mark.slow


def invalid(stub, queries, top_k=None) -> str:
    request = search_pb2.SearchRequest(queries=queries)
    if top_k is not None:
        request.top_k = top_k
    with pytest.raises(grpc.RpcError) as info:
        stub.Search(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    return info.value.details()


def test_health_and_reflection(bm25_server) -> None:
    assert bm25_server.health("paretopo.v1.Search") == health_pb2.HealthCheckResponse.SERVING
    with bm25_server.channel() as ch:
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        [reply] = list(stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5))
    names = {s.name for s in reply.list_services_response.service}
    assert {"paretopo.v1.Search", "grpc.health.v1.Health"} <= names


def test_describe(bm25_server) -> None:
    d = bm25_server.stub().Describe(search_pb2.DescribeRequest(), timeout=10)
    assert d.backend == search_pb2.BACKEND_BM25 and d.num_passages == 9654
    assert (d.default_top_k, d.max_top_k, d.max_queries, d.max_query_chars) == (3, 20, 64, 200)
    assert len(d.corpus_sha256) == 64


def test_async_client_batch(bm25_server) -> None:
    async def run() -> list[search_pb2.QueryResult]:
        async with SearchClient(bm25_server.target, timeout_s=10) as client:
            return await client.search(["who told the story of the prodigal son",
                                        "City Bank of New York founded 1812"])

    prodigal, citi = asyncio.run(run())
    assert len(prodigal.passages) == 3 and len(citi.passages) == 3
    assert prodigal.passages[0].title == "Parable of the Prodigal Son"
    assert prodigal.formatted.startswith(
        '<information>Doc 1(Title: "Parable of the Prodigal Son") ')
    assert prodigal.formatted.endswith("</information>") and "\nDoc 3(Title: " in \
        prodigal.formatted
    assert citi.passages[0].title == "Citibank"
    assert all(p.id.startswith("wiki18-") and p.score > 0 for p in prodigal.passages)


@pytest.mark.parametrize(("queries", "top_k", "words"), [
    ([], None, "queries is empty"),
    (["ok", ""], None, "query 1 is empty"),
    (["x" * 201], None, "query 0 is 201 characters long; at most 200"),
    (["ok"] * 65, None, "65 queries in one request; at most 64"),
    (["ok"], 0, "top_k=0 is out of range"),
    (["ok"], -1, "top_k=-1 is out of range"),
    (["ok"], 21, "top_k=21 is out of range"),
    (["ok"], 2**31 - 1, "top_k=2147483647 is out of range"),
])
def test_bad_input_is_invalid_argument(bm25_server, queries, top_k, words) -> None:
    assert words in invalid(bm25_server.stub(), queries, top_k)


def test_non_utf8_bytes_are_invalid_argument(bm25_server) -> None:
    raw = search_pb2.SearchRequest(queries=["fine", "q_x_q"], top_k=2).SerializeToString()
    raw = raw.replace(b"q_x_q", b"q\xc3(\xffq")
    with bm25_server.channel() as ch:
        call = ch.unary_unary("/paretopo.v1.Search/Search")  # bytes in, bytes out
        with pytest.raises(grpc.RpcError) as info:
            call(raw, timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "query 1 is not valid UTF-8 (byte 0xc3 at byte offset 1)" in info.value.details()
        with pytest.raises(grpc.RpcError) as info:
            call(b"\x0a\x7fshort", timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # and the server still answers
    assert bm25_server.stub().Search(search_pb2.SearchRequest(queries=["jazz"]), timeout=10)


def test_client_deadline_ends_a_call_to_a_silent_server() -> None:
    """A peer that accepts TCP but never speaks HTTP/2: the client's deadline ends the call."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        target = f"127.0.0.1:{silent.getsockname()[1]}"

        async def run() -> grpc.StatusCode:
            async with SearchClient(target, timeout_s=0.5) as client:
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await client.search(["jazz"])
                return info.value.code()

        assert asyncio.run(run()) == grpc.StatusCode.DEADLINE_EXCEEDED


def test_concurrent_calls_match_sequential_answers(bm25_server) -> None:
    queries = [f"{w} history" for w in ("jazz", "volcano", "bank", "river", "war", "king",
                                          "football", "opera", "island", "physics")]

    async def run() -> tuple[list, list]:
        async with SearchClient(bm25_server.target, timeout_s=30) as client:
            together = await asyncio.gather(*(client.search([q], 5) for q in queries * 3))
            alone = [await client.search([q], 5) for q in queries]
        return together, alone

    together, alone = asyncio.run(run())
    ids = [[p.id for p in r[0].passages] for r in together]
    assert ids == [[p.id for p in r[0].passages] for r in alone] * 3


def metric(text: str, name: str) -> float:
    """Value of the sample `name` (labels included, as exposed) in a /metrics page; 0 if absent."""
    for line in text.splitlines():
        key, _, value = line.rpartition(" ")
        if key == name:
            return float(value)
    return 0.0


def test_metrics_count_calls_latency_and_errors(bm25_server) -> None:
    url = f"http://127.0.0.1:{bm25_server.metrics_port}/metrics"
    before = httpx.get(url, timeout=5).text
    stub = bm25_server.stub()
    stub.Search(search_pb2.SearchRequest(queries=["jazz", "opera"]), timeout=10)
    invalid(stub, [""])
    after = httpx.get(url, timeout=5).text
    calls = 'paretopo_search_calls_total{method="Search"}'
    errors = 'paretopo_search_errors_total{code="INVALID_ARGUMENT",method="Search"}'
    latency = 'paretopo_search_latency_seconds_count{method="Search"}'
    assert metric(after, calls) - metric(before, calls) == 2
    assert metric(after, errors) - metric(before, errors) == 1
    assert metric(after, latency) - metric(before, latency) == 2
    assert metric(after, "paretopo_search_queries_total") - \
        metric(before, "paretopo_search_queries_total") == 2
