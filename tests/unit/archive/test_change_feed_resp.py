"""The change feed's RESP2 reader: whole replies only, however the bytes are split."""

from __future__ import annotations

import pytest

from services.archive.changes import RespError, RespParser, command

# what the subscription connection receives, byte for byte (captured from redis-server 6.2)
STREAM = (b":4\r\n+OK\r\n*3\r\n$9\r\nsubscribe\r\n$20\r\n__redis__:invalidate\r\n:1\r\n"
          b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n"
          b"*2\r\n$14\r\nns:run:a:nstar\r\n$16\r\nns:run:a:version\r\n"
          b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"
          b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n$-1\r\n"
          b"-NOPERM this user has no permissions\r\n")
REPLIES = [4, b"OK", [b"subscribe", b"__redis__:invalidate", 1],
           [b"message", b"__redis__:invalidate", [b"ns:run:a:nstar", b"ns:run:a:version"]],
           [b"pong", b""], [b"message", b"__redis__:invalidate", None]]


def parsed(replies: list) -> list:
    return [str(r) if isinstance(r, RespError) else r for r in replies]


def test_whole_stream_at_once():
    replies = RespParser().feed(STREAM)
    assert parsed(replies) == [*REPLIES, "NOPERM this user has no permissions"]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64])
def test_split_anywhere(chunk):
    parser, replies = RespParser(), []
    for i in range(0, len(STREAM), chunk):
        replies += parser.feed(STREAM[i:i + chunk])
        # what is held back is only ever an incomplete reply
        assert not parser.buffer or i + chunk < len(STREAM)
    assert parsed(replies) == [*REPLIES, "NOPERM this user has no permissions"]
    assert not parser.buffer


def test_bulk_strings_may_hold_crlf():
    data = command("SET", "k", b"a\r\nb")
    assert RespParser().feed(data) == [[b"SET", b"k", b"a\r\nb"]]


def test_unknown_type_byte_is_an_error():
    with pytest.raises(ValueError):
        RespParser().feed(b"!oops\r\n")
