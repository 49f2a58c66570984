"""Prometheus metrics of the search service: calls, latency and errors by kind."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

# Batch-1 BM25 answers in about a millisecond, a batch of 64 dense queries on CPU in about a
# second: buckets span both.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0)


class SearchMetrics:
    """Counters and a latency histogram in a registry of their own (one per server)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.calls = Counter("paretopo_search_calls", "RPCs received, by method.",
                             ["method"], registry=self.registry)
        self.errors = Counter("paretopo_search_errors",
                              "RPCs that failed, by method and gRPC status code.",
                              ["method", "code"], registry=self.registry)
        self.latency = Histogram("paretopo_search_latency_seconds",
                                 "Wall time of an RPC inside the server, by method (s).",
                                 ["method"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.queries = Counter("paretopo_search_queries",
                               "Queries answered (a Search call carries a batch).",
                               registry=self.registry)

    def serve(self, port: int, host: str = "127.0.0.1") -> Any:
        """Serve `/metrics` over HTTP on host:port in a daemon thread; return the server."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return server
