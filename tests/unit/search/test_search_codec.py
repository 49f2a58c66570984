"""The gRPC adapter's request decoding: non-UTF-8 queries become a named InvalidArgument."""

from __future__ import annotations

from paretopo.v1 import search_pb2
from services.tools.search.grpc import Undecodable, bad_utf8_query, decode_search_request


def encoded(*queries: bytes, top_k: int | None = None) -> bytes:
    """A SearchRequest on the wire with raw bytes as queries (protobuf would refuse them)."""
    marker = [f"q{i:04d}".encode() for i in range(len(queries))]
    req = search_pb2.SearchRequest(queries=[m.decode() for m in marker])
    if top_k is not None:
        req.top_k = top_k
    data = req.SerializeToString()
    for m, q in zip(marker, queries, strict=True):
        assert len(q) == len(m)  # same length keeps the length prefixes valid
        data = data.replace(m, q)
    return data


def test_valid_request_decodes() -> None:
    req = decode_search_request(encoded(b"hello", top_k=4))
    assert isinstance(req, search_pb2.SearchRequest)
    assert list(req.queries) == ["hello"] and req.HasField("top_k") and req.top_k == 4


def test_unset_top_k_is_distinguishable_from_zero() -> None:
    unset = decode_search_request(encoded(b"hello"))
    zero = decode_search_request(encoded(b"hello", top_k=0))
    assert not unset.HasField("top_k")
    assert zero.HasField("top_k") and zero.top_k == 0


def test_non_utf8_query_is_named() -> None:
    result = decode_search_request(encoded(b"hello", b"ab\xffcd", top_k=3))
    assert isinstance(result, Undecodable)
    assert result.message == "query 1 is not valid UTF-8 (byte 0xff at byte offset 2)"


def test_truncated_utf8_sequence() -> None:
    # "é" is C3 A9; a lone C3 followed by ASCII is invalid.
    assert bad_utf8_query(encoded(b"\xc3ABCD")) == \
        "query 0 is not valid UTF-8 (byte 0xc3 at byte offset 0)"


def test_garbage_is_reported_as_malformed() -> None:
    result = decode_search_request(b"\x0a\x05ab")
    assert isinstance(result, Undecodable)
    assert "not a valid paretopo.v1.SearchRequest" in result.message


def test_scanner_ignores_valid_requests_and_garbage() -> None:
    assert bad_utf8_query(encoded(b"fine!", b"also!", top_k=2)) is None
    assert bad_utf8_query(b"\xff\xff\xff") is None
