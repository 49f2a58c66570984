"""The training loop: feed the rollout queue, score groups, compute advantages, update the
policy, publish weights, validate, checkpoint. `train(config)` runs one run to its budget.

One training step, in order (algorithm.md): collect `prompts_per_step` groups no older than
`max_staleness` versions; r_acc from the grader; n* update then r_tool (Eq. 4) through the
archive; advantages of the stage's estimator (Stage 1 step 6, Eqs. 7-9, or a baseline);
dynamic sampling; log π_old recomputed; DAPO loss; AdamW; publish version v+1; every
`eval.every` steps validate and report y_t (Eqs. 5-6 run in the archive, which answers the
new weights and ρ).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import numpy as np
import torch

from paretopo.core.advantages import (
    AdvantageInputs,
    compute_advantages,
    estimator_for,
    nonzero_groups,
)
from paretopo.errors import Unavailable
from paretopo.jobs import GroupResult, JobKind, RolloutJob, SamplingParams, stable_seed
from paretopo.streams import RolloutKeys
from services.learner import checkpoint, ranks, scoring
from services.learner.backends import (
    Backend,
    UpdateStats,
    policy_update,
    recompute_logprobs,
)
from services.learner.batch import collate
from services.learner.config import RunConfig
from services.learner.data import Prompt, build_prompt_source
from services.learner.metrics import MetricsSink, StepMetrics
from services.learner.outage import OutageGuard
from services.learner.queue import RolloutQueue
from services.learner.session import (
    FIXED_WEIGHT_ALGORITHMS,
    archive_error,
    check_model_path,
    connect_redis,
    open_archive,
    publish,
    publish_start,
)

READ_BLOCK_MS = 200
NO_UPDATE = UpdateStats(0.0, 0.0, 0.0, 0.0, 0.0, 0, 0)


@dataclass
class TrainSummary:
    """How a run ended."""

    run_id: str
    steps: int
    stage: int
    policy_version: int
    stopped_by: str  # "max_steps", "max_minutes" or "stop"
    resumed_from: int | None
    last: StepMetrics | None = None
    evaluations: list[dict[str, float]] = field(default_factory=list)


class Learner:
    """One run's learner. Use `train()`; the class holds the state between steps."""

    def __init__(self, config: RunConfig, *, on_step: Callable[[StepMetrics], None] | None = None,
                 stop: asyncio.Event | None = None) -> None:
        self.config = config
        self.on_step = on_step
        self.stop = stop or asyncio.Event()
        self.keys = RolloutKeys(config.services.namespace)
        self.nonce = uuid.uuid4().hex[:8]  # job ids of this incarnation only
        self.inflight: dict[str, int] = {}  # train job id -> prompt seq
        self.train_buffer: list[GroupResult] = []
        self.eval_buffer: dict[str, GroupResult] = {}
        self.timings: dict[str, float] = {}
        self.evaluations: list[dict[str, float]] = []
        self.taken_seqs: list[int] = []  # prompts of the step in progress
        self._wait_key = "wait"  # waits during validation count as eval time instead

    # ---------------------------------------------------------------- set-up
    async def open(self) -> None:
        cfg = self.config
        check_model_path(cfg.model_path)
        self.prompts = build_prompt_source(cfg)
        self.stage1_steps = cfg.stage1_step_count(len(self.prompts))
        budget = cfg.services.outage_budget_s
        self.redis_guard = OutageGuard(f"Redis at {cfg.services.redis_url}", budget)
        self.archive_guard = OutageGuard(f"the archive at {cfg.services.archive}", budget)
        self.redis = await connect_redis(cfg.services.redis_url)
        self.archive, info = await open_archive(cfg)
        ckpt = checkpoint.latest_checkpoint(cfg.checkpoint_dir)
        self.resumed_from = checkpoint.load_state(ckpt).step if ckpt else None
        self.backend: Backend = ranks.build_backend_on_ranks(  # every rank builds it
            ckpt / "policy" if ckpt else cfg.model_path, cfg.optim, cfg.backend)
        if ckpt:
            self.state = checkpoint.restore(ckpt, self.backend)
        else:
            random.seed(cfg.seed)
            np.random.seed(cfg.seed % 2**32)
            torch.manual_seed(cfg.seed)
            self.state = checkpoint.LoopState(weights=list(info.state.weights),
                                              rho=info.state.rho,
                                              hypervolume=info.state.hypervolume)
        self.queue = RolloutQueue(self.redis, self.keys, cfg.run_id, f"learner-{self.nonce}")
        await self.queue.ensure_groups()
        self.state.policy_version = await publish_start(
            self.redis, self.keys, cfg, self.backend, self.state.policy_version if ckpt else None)
        self.sink = MetricsSink(cfg.metrics_log, offset=self.state.metrics_offset if ckpt else 0,
                                tensorboard_dir=cfg.tensorboard_dir,
                                resumed_step=self.state.step if ckpt else None)
        if cfg.services.metrics_port is not None:
            self.metrics_port = self.sink.serve(cfg.services.metrics_host,
                                                cfg.services.metrics_port)
        for seq in self.state.pending_seqs:  # enqueued before the crash, never trained on
            await self._enqueue_train(seq)
        self._last_group_at = time.monotonic()

    async def close(self) -> None:
        for name in ("sink",):
            if hasattr(self, name):
                getattr(self, name).close()
        if hasattr(self, "prompts"):
            self.prompts.close()
        if hasattr(self, "archive"):
            await self.archive.close()
        if hasattr(self, "redis"):
            await self.redis.aclose()

    # ---------------------------------------------------------------- queue
    def _job(self, prompt: Prompt, kind: JobKind, job_id: str, n: int,
             sampling: SamplingParams) -> RolloutJob:
        return RolloutJob(job_id=job_id, run_id=self.config.run_id, kind=kind,
                          step=self.state.step, prompt_id=prompt.id, prompt=prompt.text,
                          tool_format=self.config.data.tool_format, n_samples=n,
                          sampling=sampling, min_policy_version=self.state.policy_version,
                          search_top_k=prompt.task.search_top_k)

    def _eval_sampling(self, prompt: Prompt) -> SamplingParams:
        """Validation sampling seeded by (prompt, policy version); the worker derives each
        sample's seed from it and the sample index, so a checkpoint's validation repeats."""
        s = self.config.eval_sampling
        if s.seed is not None:
            return s
        return s.model_copy(update={"seed": stable_seed(prompt.id, self.state.policy_version)})

    def _train_sampling(self, seq: int):
        s = self.config.sampling
        # A per-prompt seed keeps sampling reproducible when the run sets none.
        if s.seed is not None:
            return s
        return s.model_copy(update={"seed": stable_seed("train", self.config.seed, seq)})

    async def _enqueue_train(self, seq: int) -> None:
        job_id = f"{self.config.run_id}-t{seq}-{self.nonce}-{len(self.inflight)}"
        job = self._job(self.prompts.at(seq), JobKind.TRAIN, job_id, self.config.group_size,
                        self._train_sampling(seq))
        self.inflight[job_id] = seq
        await self.redis_guard.call("enqueue", lambda: self.queue.enqueue([job]))

    async def _fill(self) -> None:
        """Keep (max_staleness + 1) steps of prompts in flight: with FIFO workers a group is
        then sampled at most max_staleness versions behind the step that trains on it."""
        capacity = (self.config.max_staleness + 1) * self.config.prompts_per_step
        while len(self.inflight) < capacity:
            await self._enqueue_train(self.state.next_seq)
            self.state.next_seq += 1

    async def _read_some(self, count: int) -> None:
        """Read up to `count` groups into the train/eval buffers; ignore foreign results."""
        groups, seconds = await self.redis_guard.call(
            "read groups", lambda: self.queue.read(count, READ_BLOCK_MS))
        self._add(self._wait_key, seconds)
        for g in groups:
            if g.kind is JobKind.EVAL and g.job_id in self.eval_buffer:
                self.eval_buffer[g.job_id] = g
            elif g.job_id in self.inflight:
                self.train_buffer.append(g)
        if groups:
            self._last_group_at = time.monotonic()
        elif time.monotonic() - self._last_group_at > self.config.group_timeout_s:
            raise Unavailable(
                f"no rollout group arrived for {self.config.group_timeout_s:.0f} s; are rollout "
                f"workers running on {self.config.services.redis_url} with namespace "
                f"{self.config.services.namespace!r}?")

    async def _collect_train(self) -> tuple[list[GroupResult], int] | None:
        """`prompts_per_step` fresh groups (None when stopped); stale ones are re-enqueued."""
        need, stale = self.config.prompts_per_step, 0
        while True:
            fresh = []
            for g in self.train_buffer:
                if g.policy_version < self.state.policy_version - self.config.max_staleness:
                    stale += 1
                    await self._enqueue_train(self.inflight.pop(g.job_id))
                else:
                    fresh.append(g)
            self.train_buffer = fresh
            if len(fresh) >= need:
                self.train_buffer = fresh[need:]
                # Until the step ends, a checkpoint lists these prompts as pending.
                self.taken_seqs = [self.inflight.pop(g.job_id) for g in fresh[:need]]
                return fresh[:need], stale
            if self.stop.is_set():
                return None
            await self._read_some(need - len(fresh))

    # ---------------------------------------------------------------- scoring
    async def _archive_call(self, what: str, attempt):
        """`attempt()` (an archive RPC), retried through an outage of the archive."""
        start = time.perf_counter()
        try:
            return await self.archive_guard.call(what, attempt)
        except grpc.aio.AioRpcError as exc:
            raise archive_error(exc, self.config.services.archive, what) from None
        finally:
            self._add("archive", time.perf_counter() - start)

    async def _score(self, groups: list[GroupResult]) -> tuple[torch.Tensor, torch.Tensor]:
        """(r_acc (B, G), rewards (B, G, M)); n* is updated before r_tool is computed."""
        start = time.perf_counter()
        acc = scoring.accuracy(groups, self.prompts)
        self._add("score", time.perf_counter() - start)
        successes = scoring.successful_calls(groups, acc)
        nstar = await self._archive_call("UpdateOptimalCalls", lambda: (
            self.archive.update_optimal_calls(self.config.run_id, successes)))
        start = time.perf_counter()
        alg = self.config.algorithm
        rewards = scoring.reward_matrix(alg.objectives, groups, acc, nstar, reward=alg.reward,
                                        token_budget=self.config.sampling.max_completion_tokens)
        self._add("score", time.perf_counter() - start)
        return acc, rewards

    def _advantages(self, rewards: torch.Tensor, stage: int) -> torch.Tensor:
        alg = self.config.algorithm
        fixed = alg.name in FIXED_WEIGHT_ALGORITHMS
        inputs = AdvantageInputs(
            weights=tuple(alg.stage1.initial_weights if fixed else self.state.weights),
            rho=0.0 if fixed else self.state.rho, amplification=alg.stage1.amplification,
            pareto_eps=alg.stage2.pareto_eps)
        return compute_advantages(estimator_for(alg.name, stage), rewards, inputs)

    # ---------------------------------------------------------------- one step
    def _add(self, key: str, seconds: float) -> None:
        self.timings[key] = self.timings.get(key, 0.0) + seconds

    async def _set_stage(self) -> None:
        stage = 1 if self.state.step < self.stage1_steps else 2
        if stage != self.state.stage:
            await self._archive_call("SetStage", lambda: self.archive.set_stage(
                self.config.run_id, stage))
            self.state.stage = stage

    def _update(self, groups: list[GroupResult], adv: torch.Tensor) -> UpdateStats:
        trajectories = [t for g in groups for t in g.trajectories]
        advantages = adv.reshape(-1).float()
        batch = collate(trajectories, self.backend.tokenizer.pad_token_id)
        if int(batch.loss_mask.sum()) == 0:
            return NO_UPDATE
        o = self.config.optim
        if ranks.world_size() > 1:  # scattered over the ranks, the same update as one
            return ranks.leader_update(self.backend, batch, advantages, self.config.algorithm.loss,
                                       mini_batches=o.mini_batches,
                                       micro_batch_size=o.micro_batch_size)
        old_logp = recompute_logprobs(self.backend, batch, o.micro_batch_size)
        return policy_update(self.backend, batch, old_logp, advantages, self.config.algorithm.loss,
                             mini_batches=o.mini_batches, micro_batch_size=o.micro_batch_size)

    async def step(self) -> StepMetrics | None:
        """One training step; None when `stop` was set while waiting for groups."""
        t0 = time.perf_counter()
        self.timings = {k: 0.0 for k in ("wait", "score", "archive", "update", "publish",
                                         "eval", "queue")}
        queue_before = self.queue.queue_s
        await self._set_stage()
        await self._fill()
        collected = await self._collect_train()
        if collected is None:
            return None
        groups, stale = collected
        lag = max(self.state.policy_version - g.policy_version for g in groups)
        acc, rewards = await self._score(groups)
        start = time.perf_counter()
        adv = self._advantages(rewards, self.state.stage)
        # A tool that was down is the infrastructure's fault, not the policy's: such groups
        # are scored (n* still learns from their successes) but never trained on.
        outage = scoring.tool_outage(groups)
        keep = nonzero_groups(adv) & ~outage
        self._add("score", time.perf_counter() - start)
        kept = [g for g, k in zip(groups, keep.tolist(), strict=True) if k]

        start = time.perf_counter()
        stats = self._update(kept, adv[keep]) if kept else NO_UPDATE
        self._add("update", time.perf_counter() - start)
        if stats.optimizer_steps:
            start = time.perf_counter()
            self.state.policy_version += 1
            version = self.state.policy_version
            await self.redis_guard.call("publish", lambda: publish(
                self.redis, self.keys, self.config, self.backend, version))
            self._add("publish", time.perf_counter() - start)
        self.state.step += 1
        self.taken_seqs = []

        evaluated = None
        if self.state.step % self.config.eval.every == 0:
            start, self._wait_key = time.perf_counter(), "eval_wait"
            evaluated = await self.validate()
            self._wait_key = "wait"
            self._add("eval", time.perf_counter() - start)
            self.timings.pop("eval_wait", None)
        self.timings["queue"] = self.queue.queue_s - queue_before
        metrics = self._metrics(groups, acc, rewards, stats, len(groups) - len(kept), stale,
                                lag, evaluated, time.perf_counter() - t0,
                                tool_outage=int(outage.sum()),
                                advantage_abs=float(adv[keep].abs().mean()) if kept else 0.0)
        self.sink.record(metrics, self.config.algorithm.objectives)
        if self.state.step % self.config.checkpoint_every == 0:
            self.save()
        return metrics

    def _metrics(self, groups, acc, rewards, stats: UpdateStats, dropped: int, stale: int,
                 lag: int, evaluated, step_s: float, *, tool_outage: int = 0,
                 advantage_abs: float = 0.0) -> StepMetrics:
        alg = self.config.algorithm
        means = rewards.mean(dim=(0, 1)).tolist()
        self.state.elapsed_s += step_s
        return StepMetrics(
            run_id=self.config.run_id, step=self.state.step, stage=self.state.stage,
            algorithm=alg.name, policy_version=self.state.policy_version,
            em=float(acc.mean()), tool_calls=float(scoring.tool_calls(groups).mean()),
            r_tool=means[alg.objectives.index("tool_efficiency")],
            objectives=dict(zip(alg.objectives, means, strict=True)), loss=stats.loss,
            clip_fraction=stats.clip_fraction, approx_kl=stats.approx_kl,
            entropy=stats.entropy, grad_norm=stats.grad_norm, advantage_abs=advantage_abs,
            groups=len(groups),
            groups_dropped=dropped, groups_stale=stale, groups_tool_outage=tool_outage,
            max_lag=lag, tokens=stats.tokens,
            weights=list(self.state.weights), rho=self.state.rho,
            hypervolume=self.state.hypervolume, eval_objectives=evaluated,
            timings=dict(self.timings), step_s=step_s, elapsed_s=self.state.elapsed_s)

    # ---------------------------------------------------------------- validation
    async def validate(self) -> dict[str, float]:
        """`eval.samples` rollouts of each validation prompt with the current version, through
        the same queue; y_t (mean of each objective over every sample, r_tool with n* over
        every sample so far) reported to the archive, which answers the new weights, ρ and
        hypervolume."""
        cfg = self.config
        jobs = [self._job(p, JobKind.EVAL, f"{cfg.run_id}-e{self.state.step}-{i}-{self.nonce}",
                          cfg.eval.samples, self._eval_sampling(p))
                for i, p in enumerate(self.prompts.validation)]
        self.eval_buffer = {j.job_id: None for j in jobs}
        await self.redis_guard.call("enqueue", lambda: self.queue.enqueue(jobs))
        while any(g is None for g in self.eval_buffer.values()):
            if self.stop.is_set():
                return {}
            await self._read_some(sum(g is None for g in self.eval_buffer.values()))
        groups = list(self.eval_buffer.values())
        self.eval_buffer = {}
        acc, rewards = await self._score(groups)
        y = rewards.mean(dim=(0, 1)).tolist()
        step = self.state.step
        record = await self._archive_call("ReportOutcome", lambda: self.archive.report_outcome(
            cfg.run_id, step, y))
        self.state.weights, self.state.rho = list(record.weights), record.rho
        self.state.hypervolume = record.hypervolume
        result = dict(zip(cfg.algorithm.objectives, y, strict=True))
        result |= scoring.outcome_summary(groups, acc, self.prompts)
        self.evaluations.append({"step": self.state.step, **result})
        return result

    # ---------------------------------------------------------------- checkpoint
    def save(self) -> None:
        self.state.pending_seqs = sorted([*self.inflight.values(), *self.taken_seqs])
        self.state.metrics_offset = self.sink.offset()
        checkpoint.save_checkpoint(self.config.checkpoint_dir, self.state, self.backend)

    def _budget_left(self, started: float) -> str | None:
        b = self.config.budget
        if b.max_steps is not None and self.state.step >= b.max_steps:
            return "max_steps"
        if b.max_minutes is not None and time.monotonic() - started > 60 * b.max_minutes:
            return "max_minutes"
        if self.stop.is_set():
            return "stop"
        return None

    async def run(self) -> TrainSummary:
        await self.open()
        started = time.monotonic() - self.state.elapsed_s
        self._last_group_at = time.monotonic()
        if self.config.eval.at_start and self.state.step == 0 and self.resumed_from is None:
            await self.validate()
        last = None
        try:
            while (reason := self._budget_left(started)) is None:
                metrics = await self.step()
                if metrics is not None:
                    last = metrics
                    if self.on_step is not None:
                        self.on_step(metrics)
        except Unavailable:
            self.save()  # a dependency stayed down past the budget: resume from here
            raise
        if self.state.step % self.config.checkpoint_every:
            self.save()
        return TrainSummary(self.config.run_id, self.state.step, self.state.stage,
                            self.state.policy_version, reason, self.resumed_from, last,
                            list(self.evaluations))


async def train(config: RunConfig, *, on_step: Callable[[StepMetrics], None] | None = None,
                stop: asyncio.Event | None = None) -> TrainSummary:
    """Run (or resume) `config` to its budget or until `stop` is set."""
    learner = Learner(config, on_step=on_step, stop=stop)
    try:
        return await learner.run()
    finally:
        await learner.close()
