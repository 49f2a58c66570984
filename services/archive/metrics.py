"""Prometheus metrics of the archive service (one set per process)."""

import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter("paretopo_archive_requests_total", "Requests served, by API, method and code.",
                   ["api", "method", "code"])
LATENCY = Histogram("paretopo_archive_request_seconds", "Request latency in seconds.",
                    ["api", "method"],
                    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0))
NSTAR_UPDATES = Counter("paretopo_archive_nstar_updates_total",
                        "Prompt entries submitted to n* min-updates.")
REPORTS = Counter("paretopo_archive_reports_total", "Outcome reports, by whether replayed.",
                  ["replayed"])
# With REST workers (multiprocess mode) the last value set by any process is the current one.
HYPERVOLUME = Gauge("paretopo_archive_hypervolume", "Hypervolume of a run's archive.", ["run"],
                    multiprocess_mode="mostrecent")
RHO = Gauge("paretopo_archive_rho", "rho_t of a run (Eq. 6).", ["run"],
            multiprocess_mode="mostrecent")
UNREADABLE_RUNS = Counter("paretopo_archive_unreadable_runs_total",
                          "Stored runs a listing skipped because their data failed validation.")


def exposition() -> bytes:
    """The Prometheus text exposition: of every REST process when they share a metrics
    directory (`--http-workers` > 1), else of this one."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()
