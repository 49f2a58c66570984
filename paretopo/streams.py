"""Every Redis key of the rollout path, in one place.

Rollout workers are shared by all runs: jobs arrive on one stream (each job names its run),
while results, the policy pointer and the consumed-job set live under the run's prefix, so
two learners never read each other's groups.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Consumer group of the rollout workers on the jobs stream.
WORKERS_GROUP = "rollout-workers"
#: Consumer group of the learner on a run's results stream.
LEARNER_GROUP = "learner"
#: Dead letters kept (about; the oldest are trimmed): enough to diagnose, bounded in memory.
DEAD_LETTERS_KEPT = 10_000


def run_prefix(namespace: str, run_id: str) -> str:
    """Prefix of every key that belongs to one run (shared with the archive's keys)."""
    return f"{namespace}:run:{run_id}"


@dataclass(frozen=True)
class RolloutKeys:
    """Key names under `namespace` (default `paretopo`)."""

    namespace: str = "paretopo"

    @property
    def jobs(self) -> str:
        """Stream of `RolloutJob` messages, read by `WORKERS_GROUP`."""
        return f"{self.namespace}:rollout:jobs"

    @property
    def dead_letters(self) -> str:
        """Stream of `DeadLetter` messages: jobs that failed too many times."""
        return f"{self.namespace}:rollout:dead"

    @property
    def workers(self) -> str:
        """Hash worker name -> JSON heartbeat (version loaded, jobs done, last seen)."""
        return f"{self.namespace}:rollout:workers"

    def results(self, run_id: str) -> str:
        """Stream of `GroupResult` messages of one run, read by `LEARNER_GROUP`."""
        return f"{run_prefix(self.namespace, run_id)}:rollout:results"

    def consumed(self, run_id: str) -> str:
        """Set of job ids whose result the learner has taken (drops duplicate results)."""
        return f"{run_prefix(self.namespace, run_id)}:rollout:consumed"

    def policy(self, run_id: str) -> str:
        """Hash {version, path}: the run's current policy weights on shared storage."""
        return f"{run_prefix(self.namespace, run_id)}:policy"

    def policy_channel(self, run_id: str) -> str:
        """Pub/sub channel announcing each new policy version (the payload is the version)."""
        return f"{run_prefix(self.namespace, run_id)}:policy:updates"
