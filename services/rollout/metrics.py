"""Prometheus metrics of one rollout worker (its own registry, served on /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry()
        self.jobs = Counter("paretopo_rollout_jobs", "Jobs finished, by outcome "
                            "(done, failed, dead_lettered, released).", ["outcome"], registry=r)
        self.claimed = Counter("paretopo_rollout_jobs_claimed",
                               "Jobs taken over from a silent worker.", registry=r)
        self.trajectories = Counter("paretopo_rollout_trajectories",
                                    "Trajectories sampled, by finish reason.", ["finish"],
                                    registry=r)
        self.generated_tokens = Counter("paretopo_rollout_generated_tokens",
                                        "Tokens the model generated.", registry=r)
        self.tool_calls = Counter("paretopo_rollout_tool_calls", "Tool calls made.", registry=r)
        self.tool_errors = Counter("paretopo_rollout_tool_errors", "Tool calls that failed.",
                                   registry=r)
        self.job_seconds = Histogram("paretopo_rollout_job_seconds", "Wall time of a job.",
                                     buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600),
                                     registry=r)
        self.policy_version = Gauge("paretopo_rollout_policy_version",
                                    "Policy version loaded (-1: none).", registry=r)
        self.policy_version.set(-1)
        self.in_flight = Gauge("paretopo_rollout_jobs_in_flight", "Jobs being sampled.",
                               registry=r)
        self.redis_up = Gauge("paretopo_rollout_redis_up", "1 when Redis answered last.",
                              registry=r)
