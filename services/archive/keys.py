"""Every Redis key the archive uses, in one place. Each run lives under its own prefix."""

from __future__ import annotations

from dataclasses import dataclass

from paretopo.streams import run_prefix


@dataclass(frozen=True)
class ArchiveKeys:
    """Key names under `namespace` (default `paretopo`), e.g. `paretopo:run:demo:nstar`."""

    namespace: str = "paretopo"

    @property
    def runs(self) -> str:
        """Set of run ids."""
        return f"{self.namespace}:runs"

    @property
    def any_run(self) -> str:
        """Prefix of every run's keys (what the change feed subscribes to)."""
        return self.run_prefix("")

    def run_prefix(self, run_id: str) -> str:
        return run_prefix(self.namespace, run_id)

    def config(self, run_id: str) -> str:
        """String: the run's configuration as JSON (written once)."""
        return f"{self.run_prefix(run_id)}:config"

    def state(self, run_id: str) -> str:
        """String: Stage-1 state, stage and hypervolume as JSON (rewritten by each report)."""
        return f"{self.run_prefix(run_id)}:state"

    def version(self, run_id: str) -> str:
        """Integer bumped in the same transaction as every state write: readers compare it to
        the version they cached instead of reading and parsing the whole state."""
        return f"{self.run_prefix(run_id)}:version"

    def nstar(self, run_id: str) -> str:
        """Hash prompt id -> n*(q), only ever lowered (atomic min in Lua)."""
        return f"{self.run_prefix(run_id)}:nstar"

    def history(self, run_id: str) -> str:
        """Hash step -> JSON record of that step's report; its presence makes reports idempotent."""
        return f"{self.run_prefix(run_id)}:history"
