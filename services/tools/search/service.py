"""The search service object: validation, retrieval over a `Retriever`, formatting.

All the logic of the search tool lives here; `grpc.py` is a thin adapter over it. Bad input
raises `paretopo.errors.InvalidArgument` with a message that names the problem.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from paretopo.corpus import Passage
from paretopo.errors import InvalidArgument
from paretopo.tools_format import format_passages, wrap_information


class Retriever(Protocol):
    """A search backend: passage indices and scores, best first, for a batch of queries."""

    backend: str
    model: str
    num_passages: int

    def search(self, queries: Sequence[str], k: int) -> list[list[tuple[int, float]]]: ...


class PassageSource(Protocol):
    """Where passage number i comes from (the index's memory-mapped store)."""

    def __len__(self) -> int: ...

    def get(self, i: int) -> Passage: ...


@dataclass(frozen=True)
class Limits:
    """What one request may ask for."""

    max_queries: int = 256
    max_query_chars: int = 4096
    max_top_k: int = 50
    default_top_k: int = 3

    def __post_init__(self) -> None:
        if min(self.max_queries, self.max_query_chars, self.max_top_k) < 1:
            raise ValueError(f"limits must be >= 1: {self}")
        if not 1 <= self.default_top_k <= self.max_top_k:
            raise ValueError(f"default_top_k must lie in [1, max_top_k]: {self}")


@dataclass(frozen=True, slots=True)
class ScoredPassage:
    """A retrieved passage and its score (BM25 score or cosine similarity)."""

    id: str
    title: str
    text: str
    score: float


@dataclass(frozen=True)
class QueryResult:
    """Passages for one query, best first, and the `<information>` block the agent sees."""

    passages: list[ScoredPassage]
    formatted: str


@dataclass(frozen=True)
class Description:
    backend: str
    model: str
    num_passages: int
    corpus_sha256: str
    limits: Limits


class SearchService:
    """Top-k passages for a batch of queries, with input checked against `limits`."""

    def __init__(self, retriever: Retriever, store: PassageSource, *, limits: Limits,
                 corpus_sha256: str = "") -> None:
        if len(store) != retriever.num_passages:
            raise ValueError(f"store has {len(store)} passages, retriever "
                             f"{retriever.num_passages}")
        self.retriever = retriever
        self.store = store
        self.limits = limits
        self.corpus_sha256 = corpus_sha256

    def check(self, queries: Sequence[str], top_k: int | None) -> int:
        """Validate a request; return the k to use. Raises `InvalidArgument`."""
        lim = self.limits
        if not queries:
            raise InvalidArgument("queries is empty: send at least one query")
        if len(queries) > lim.max_queries:
            raise InvalidArgument(f"{len(queries)} queries in one request; at most "
                                  f"{lim.max_queries} allowed (split the batch)")
        for i, query in enumerate(queries):
            if not query.strip():
                raise InvalidArgument(f"query {i} is empty or only white space")
            if len(query) > lim.max_query_chars:
                raise InvalidArgument(f"query {i} is {len(query)} characters long; at most "
                                      f"{lim.max_query_chars} allowed")
        k = lim.default_top_k if top_k is None else top_k
        if not 1 <= k <= lim.max_top_k:
            raise InvalidArgument(f"top_k={k} is out of range: it must lie in "
                                  f"[1, {lim.max_top_k}]")
        return k

    def search(self, queries: Sequence[str], top_k: int | None = None) -> list[QueryResult]:
        """Check the request, retrieve, and format one result per query (in order)."""
        k = self.check(queries, top_k)
        hits = self.retriever.search(list(queries), k)
        results = []
        for row in hits:
            passages = []
            for index, score in row:
                p = self.store.get(index)
                passages.append(ScoredPassage(p.id, p.title, p.text, score))
            results.append(QueryResult(passages, wrap_information(format_passages(passages))))
        return results

    def close(self) -> None:
        """Release the passage store (a memory map) if it holds one."""
        close = getattr(self.store, "close", None)
        if close is not None:
            close()

    def describe(self) -> Description:
        return Description(self.retriever.backend, self.retriever.model,
                           self.retriever.num_passages, self.corpus_sha256, self.limits)
