"""Prometheus metrics of the archive service (one set per process)."""

from prometheus_client import Counter, Gauge, Histogram, generate_latest

REQUESTS = Counter("paretopo_archive_requests_total", "Requests served, by API, method and code.",
                   ["api", "method", "code"])
LATENCY = Histogram("paretopo_archive_request_seconds", "Request latency in seconds.",
                    ["api", "method"],
                    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0))
NSTAR_UPDATES = Counter("paretopo_archive_nstar_updates_total",
                        "Prompt entries submitted to n* min-updates.")
REPORTS = Counter("paretopo_archive_reports_total", "Outcome reports, by whether replayed.",
                  ["replayed"])
HYPERVOLUME = Gauge("paretopo_archive_hypervolume", "Hypervolume of a run's archive.", ["run"])
RHO = Gauge("paretopo_archive_rho", "rho_t of a run (Eq. 6).", ["run"])
UNREADABLE_RUNS = Counter("paretopo_archive_unreadable_runs_total",
                          "Stored runs a listing skipped because their data failed validation.")


def exposition() -> bytes:
    """The Prometheus text exposition of this process's metrics."""
    return generate_latest()
