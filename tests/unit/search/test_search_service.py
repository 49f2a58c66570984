"""SearchService over a real BM25 index of real Wikipedia passages: validation, results,
formatting, and retrieval quality on Natural Questions."""

from __future__ import annotations

import pytest
from search_testdata import NQ

from paretopo.errors import InvalidArgument
from paretopo.tools_format import format_passages, wrap_information
from services.tools.search.evaluate import answer_recall, read_questions
from services.tools.search.index import load_index
from services.tools.search.service import Limits, SearchService

# Measured 0.599 (recall@3) and 0.417 (recall@1) over all 1,000 questions, 800 of which have
# an answer somewhere in the corpus; the floors leave room for library changes, not for a
# broken tokenizer or a scrambled passage store (which score near 0.1).
BM25_RECALL3_FLOOR = 0.50
BM25_RECALL1_FLOOR = 0.35


@pytest.fixture(scope="module")
def service(bm25_full_index) -> SearchService:
    retriever, store, manifest = load_index(bm25_full_index)
    svc = SearchService(retriever, store, limits=Limits(max_queries=8, max_query_chars=100,
                                                        max_top_k=20),
                        corpus_sha256=manifest.corpus_sha256)
    yield svc
    svc.close()


@pytest.mark.parametrize(("queries", "top_k", "words"), [
    ([], None, "queries is empty"),
    (["ok"] * 9, None, "9 queries in one request; at most 8"),
    (["ok", ""], None, "query 1 is empty"),
    (["ok", " \t\n"], None, "query 1 is empty"),
    (["x" * 101], None, "query 0 is 101 characters long; at most 100"),
    (["ok"], 0, "top_k=0 is out of range"),
    (["ok"], -3, "top_k=-3 is out of range"),
    (["ok"], 21, "top_k=21 is out of range: it must lie in [1, 20]"),
])
def test_bad_input_is_invalid_argument(service, queries, top_k, words) -> None:
    with pytest.raises(InvalidArgument) as info:
        service.search(queries, top_k)
    assert words in str(info.value)


def test_limits_are_inclusive(service) -> None:
    results = service.search(["é" * 100] * 8, 20)
    assert len(results) == 8


def test_default_top_k_is_three_and_results_are_ranked(service) -> None:
    [result] = service.search(["who told the story of the prodigal son"])
    assert len(result.passages) == 3
    scores = [p.score for p in result.passages]
    assert scores == sorted(scores, reverse=True) and scores[-1] > 0
    assert result.passages[0].title == "Parable of the Prodigal Son"
    assert result.formatted == wrap_information(format_passages(result.passages))
    assert result.formatted.startswith('<information>Doc 1(Title: "Parable of the Prodigal')


def test_batch_answers_in_query_order(service) -> None:
    queries = ["Citibank founded 1812 City Bank of New York", "prodigal son parable Jesus"]
    batch = service.search(queries, 2)
    singles = [service.search([q], 2)[0] for q in queries]
    assert [[p.id for p in r.passages] for r in batch] == \
        [[p.id for p in r.passages] for r in singles]
    assert batch[0].passages[0].title == "Citibank"


def test_query_without_known_terms_returns_no_passage(service) -> None:
    [stop, unknown] = service.search(["the of and", "zzqxv qqwzx"], 5)
    assert stop.passages == [] and unknown.passages == []
    assert stop.formatted == "<information></information>"


def test_describe(service, bm25_full_index) -> None:
    d = service.describe()
    assert (d.backend, d.num_passages, d.limits.default_top_k) == ("bm25", 9654, 3)
    assert len(d.corpus_sha256) == 64


def test_bm25_answer_recall_on_nq(service) -> None:
    questions = read_questions(NQ)
    assert len(questions) == 1000
    recall3 = answer_recall(service, questions, top_k=3, batch_size=8)
    recall1 = answer_recall(service, questions, top_k=1, batch_size=8)
    print(f"BM25 NQ answer recall@3={recall3:.3f} recall@1={recall1:.3f}")
    assert recall3 >= BM25_RECALL3_FLOOR
    assert recall1 >= BM25_RECALL1_FLOOR
    assert recall3 > recall1


def test_limits_reject_inconsistent_values() -> None:
    with pytest.raises(ValueError):
        Limits(max_top_k=2, default_top_k=3)
    with pytest.raises(ValueError):
        Limits(max_queries=0)
