"""The shared tool-output formatter (paretopo.tools_format)."""

from __future__ import annotations

import doctest
from types import SimpleNamespace

import paretopo.tools_format as tf
from paretopo.v1 import search_pb2


def test_search_r1_layout_numbered_from_one_in_rank_order() -> None:
    passages = [SimpleNamespace(title="Citibank", text="Founded in 1812."),
                SimpleNamespace(title='Say "hi"', text="Greeting.")]
    assert tf.format_passages(passages) == (
        'Doc 1(Title: "Citibank") Founded in 1812.\nDoc 2(Title: "Say "hi"") Greeting.')


def test_accepts_protobuf_passages() -> None:
    p = search_pb2.Passage(id="x", title="T", text="body", score=1.0)
    assert tf.wrap_information(tf.format_passages([p])) == (
        '<information>Doc 1(Title: "T") body</information>')


def test_no_passages_gives_an_empty_block() -> None:
    assert tf.format_passages([]) == ""
    assert tf.wrap_information(tf.format_passages([])) == "<information></information>"


def test_wrappers() -> None:
    assert tf.wrap_information("\n a \n") == "<information>a</information>"
    assert tf.wrap_output("  x\n") == "<output>  x\n</output>"


def test_doctests() -> None:
    failed, attempted = doctest.testmod(tf)
    assert attempted > 0 and failed == 0
