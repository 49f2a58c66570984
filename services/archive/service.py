"""The archive service object: validation, ParetoPO Stage-1 arithmetic (from `paretopo.core`)
and durable state (through `ArchiveStore`). The gRPC and REST adapters only translate."""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import grpc
from pydantic import ValidationError

from paretopo.core import scalarization
from paretopo.core.scalarization import Stage1State
from paretopo.errors import InvalidArgument, NotFound, ParetopoError, describe_validation_error
from services.archive import metrics
from services.archive.changes import ChangeFeed, Token
from services.archive.models import (
    PROMPT_ID_MAX_CHARS,
    FrontPoint,
    OptimalCallsSummary,
    OutcomeRecord,
    RunConfig,
    RunInfo,
    RunState,
    Stage,
    valid_prompt_id,
    valid_run_id,
)
from services.archive.store import ArchiveStore

MAX_BATCH = 4096
MAX_CALLS = 1_000_000
MAX_CACHED_RUNS = 1024

log = logging.getLogger(__name__)
T = TypeVar("T")


class StoredRunUnreadable(ParetopoError):
    """A run's stored config or state fails validation (e.g. written by an older version that
    accepted non-finite values). Reads of that run fail with this; listings skip it."""

    grpc_code = grpc.StatusCode.DATA_LOSS
    http_status = 500


def _check_run_id(run_id: str) -> None:
    if not valid_run_id(run_id):
        raise InvalidArgument(
            f"run_id {run_id[:80]!r} is invalid: use 1-64 of [A-Za-z0-9_.-], starting with a "
            "letter or digit")


def _check_prompt_ids(prompt_ids: Sequence[str]) -> None:
    if len(prompt_ids) > MAX_BATCH:
        raise InvalidArgument(f"{len(prompt_ids)} prompts in one call; at most {MAX_BATCH}")
    for i, prompt_id in enumerate(prompt_ids):
        if not valid_prompt_id(prompt_id):
            raise InvalidArgument(
                f"prompt id #{i} must have 1-{PROMPT_ID_MAX_CHARS} characters, "
                f"got {len(prompt_id)}")


def _check_outcome(outcome: Sequence[float], config: RunConfig) -> list[float]:
    values = [float(v) for v in outcome]
    if len(values) != config.num_objectives:
        raise InvalidArgument(
            f"outcome has {len(values)} values but run {config.run_id!r} has "
            f"{config.num_objectives} objectives ({', '.join(config.objectives)})")
    # Objective values are in [0, 1] (algorithm.md); anything else would let the hypervolume
    # and the gain overflow and pin rho at 1 for the rest of the run.
    for i, v in enumerate(values):
        if not (math.isfinite(v) and 0.0 <= v <= 1.0):
            raise InvalidArgument(f"outcome[{i}] ({config.objectives[i]}) must be a finite "
                                  f"number in [0, 1], got {v}")
    return values


@dataclass
class RunView:
    """One version of a run (config, state and n* count) as read from Redis.

    Anything derived from it (a rendered response, say) is computed once per version through
    `memo`: reads far outnumber writes, so the same front is not rebuilt per request.
    """

    version: tuple[int | None, int]
    info: RunInfo
    # the change feed's token taken before this view was read: while it is current, the
    # state (and so the front) has not changed
    token: Token | None = None
    _memo: dict[str, Any] = field(default_factory=dict, repr=False)

    def memo(self, key: str, make: Callable[[], T]) -> T:
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]


def _initial_state_dict(config: RunConfig) -> dict[str, Any]:
    stage1 = scalarization.initial_state(config.stage1.initial_weights)
    return {"stage1": stage1.to_dict(), "stage": int(Stage.SCALARIZATION), "hypervolume": 0.0}


class ArchiveService:
    """All archive behaviour; safe to share between the gRPC and REST adapters."""

    def __init__(self, store: ArchiveStore, changes: ChangeFeed | None = None) -> None:
        self.store = store
        self.changes = changes  # without one, every read asks Redis for the version
        self._configs: dict[str, RunConfig] = {}  # configs are immutable once written
        self._views: dict[str, RunView] = {}

    async def ready(self) -> bool:
        return await self.store.ping()

    async def create_run(self, config: RunConfig) -> RunInfo:
        await self.store.create_run(config.run_id, config.model_dump_json(),
                                    json.dumps(_initial_state_dict(config)))
        return await self.run_info(config.run_id)

    async def list_runs(self) -> list[RunInfo]:
        """Every readable run. A run whose stored data cannot be read is logged and left out,
        so one poisoned run never takes the listing of the others down."""
        runs = []
        for run_id in await self.store.run_ids():
            try:
                runs.append(await self.run_info(run_id))
            except (StoredRunUnreadable, InvalidArgument, NotFound) as err:
                metrics.UNREADABLE_RUNS.inc()
                log.warning("listing skips run %r: %s", run_id[:80], err)
        return runs

    async def run_config(self, run_id: str) -> RunConfig:
        _check_run_id(run_id)
        if run_id not in self._configs:
            config_json, _, _, _ = await self.store.config_and_state(run_id)
            self._configs[run_id] = _parse_config(run_id, config_json)
        return self._configs[run_id]

    async def run_view(self, run_id: str, *, with_known: bool = True) -> RunView:
        """The run as of now: one small Redis round trip when nothing changed since the last
        read (the state's version, and the n* count unless `with_known` is false), the full
        config and state otherwise. Without `with_known` the view's `known_prompts` may be
        behind: use it only for what does not show that count (the front)."""
        _check_run_id(run_id)
        view = self._views.get(run_id)
        if not with_known and (cached := self.current_front(run_id)) is not None:
            return cached
        # Taken before asking Redis: a write after this point changes the token.
        token = self.changes.token(run_id) if self.changes is not None else None
        if with_known:
            current = await self.store.version_and_known(run_id)
            if view is not None and view.version == current:
                view.token = token
                return view
        else:
            version = await self.store.version(run_id)
            if view is not None and view.version[0] == version:
                view.token = token
                return view
        config_json, state, known, state_version = await self.store.config_and_state(run_id)
        if run_id not in self._configs:
            self._configs[run_id] = _parse_config(run_id, config_json)
        info = RunInfo(config=self._configs[run_id], state=_run_state(run_id, state, known))
        view = RunView((state_version, known), info, token)
        if len(self._views) >= MAX_CACHED_RUNS:
            self._views.pop(next(iter(self._views)))
        self._views[run_id] = view
        return view

    def current_front(self, run_id: str) -> RunView | None:
        """The cached view of a run when the change feed vouches that its state has not
        changed since it was read (no Redis round trip), else None. Only for what does not
        show the n* count (the front): n* changes are not followed."""
        view = self._views.get(run_id)
        if view is not None and self.changes is not None and self.changes.current(view.token,
                                                                                   run_id):
            return view
        return None

    async def run_info(self, run_id: str) -> RunInfo:
        return (await self.run_view(run_id)).info

    async def get_optimal_calls(self, run_id: str, prompt_ids: Sequence[str]) -> list[int]:
        await self.run_config(run_id)
        _check_prompt_ids(prompt_ids)
        return await self.store.nstar_get(run_id, list(prompt_ids))

    async def update_optimal_calls(
        self, run_id: str, prompts: Sequence[tuple[str, Sequence[int]]]
    ) -> list[int]:
        """n*(q) <- min(n*(q), min successful calls) for each prompt; returns n* to use."""
        await self.run_config(run_id)
        _check_prompt_ids([prompt_id for prompt_id, _ in prompts])
        pairs = []
        for prompt_id, calls in prompts:
            if any(c < 0 or c > MAX_CALLS for c in calls):
                raise InvalidArgument(
                    f"tool-call counts of prompt {prompt_id[:80]!r} must be in 0..{MAX_CALLS}, "
                    f"got {list(calls)[:8]}")
            pairs.append((prompt_id, min(calls) if calls else -1))
        metrics.NSTAR_UPDATES.inc(len(pairs))
        return await self.store.nstar_min(run_id, pairs) if pairs else []

    async def nstar_summary(self, run_id: str) -> OptimalCallsSummary:
        await self.run_config(run_id)
        values = await self.store.nstar_values(run_id)
        return OptimalCallsSummary(
            known_prompts=len(values), distribution=dict(sorted(Counter(values).items())),
            mean=(sum(values) / len(values)) if values else None)

    async def report_outcome(self, run_id: str, step: int, outcome: Sequence[float],
                             ) -> tuple[OutcomeRecord, bool]:
        """Apply y_t of `step` (Eqs. 5-6 and the weight move) once; retries replay."""
        config = await self.run_config(run_id)
        if not 0 <= step <= 2**62:
            raise InvalidArgument(f"step must be in 0..2^62, got {step}")
        y = _check_outcome(outcome, config)

        def update(state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
            _run_state(run_id, state, 0)  # a poisoned stored state is refused, not propagated
            before = Stage1State.from_dict(state["stage1"])
            after, info = scalarization.update(before, y, config.stage1, step=step)
            if not config.adapt_weights:
                after = replace(after, weights=before.weights)
            record = OutcomeRecord(
                step=step, outcome=y, delta_hv=info.delta_hv, gain=info.gain, rho=info.rho,
                weights=list(after.weights), hypervolume=info.hypervolume, added=info.added,
                stage=Stage(state["stage"]))
            new_state = {**state, "stage1": after.to_dict(), "hypervolume": info.hypervolume}
            return new_state, record.model_dump(mode="json")

        raw, replayed = await self.store.apply_report(run_id, step, update)
        try:
            record = OutcomeRecord.model_validate(raw)
        except ValidationError as err:  # a replayed record stored by an older archive
            raise _unreadable(run_id, f"record of step {step}", err) from None
        metrics.REPORTS.labels(replayed=str(replayed).lower()).inc()
        metrics.HYPERVOLUME.labels(run=run_id).set(record.hypervolume)
        metrics.RHO.labels(run=run_id).set(record.rho)
        return record, replayed

    async def set_stage(self, run_id: str, stage: int) -> RunInfo:
        await self.run_config(run_id)
        try:
            stage = Stage(stage)
        except ValueError:
            raise InvalidArgument(f"stage must be 1 or 2, got {stage}") from None
        await self.store.set_stage(run_id, int(stage))
        return await self.run_info(run_id)

    async def history(self, run_id: str) -> list[OutcomeRecord]:
        await self.run_config(run_id)
        try:
            return [OutcomeRecord.model_validate(r) for r in await self.store.history(run_id)]
        except (ValidationError, KeyError, TypeError) as err:
            raise _unreadable(run_id, "history", err) from None


def _unreadable(run_id: str, what: str, err: Exception) -> StoredRunUnreadable:
    detail = describe_validation_error(err) if isinstance(err, ValidationError) else repr(err)
    return StoredRunUnreadable(
        f"stored {what} of run {run_id!r} is unreadable ({detail[:300]}); it was probably "
        "written by an older archive that accepted non-finite values")


def _parse_config(run_id: str, config_json: str) -> RunConfig:
    try:
        return RunConfig.model_validate_json(config_json)
    except ValidationError as err:
        raise _unreadable(run_id, "config", err) from None


def _run_state(run_id: str, state: dict[str, Any], known_prompts: int) -> RunState:
    try:
        stage1 = Stage1State.from_dict(state["stage1"])
        return RunState(
            weights=list(stage1.weights), gain=stage1.gain, rho=stage1.rho,
            stage=Stage(state["stage"]), last_step=stage1.step,
            hypervolume=state["hypervolume"], known_prompts=known_prompts,
            front=[FrontPoint(outcome=list(p.values), step=p.step) for p in stage1.archive])
    except (ValidationError, KeyError, TypeError, ValueError) as err:
        raise _unreadable(run_id, "state", err) from None
