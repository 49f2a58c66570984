"""A learner of several ranks (`torchrun --nproc_per_node N -m services.learner`): the update
of one training step scattered over the ranks, with the same result as one rank.

Rank 0 splits each mini-batch's trajectories round-robin over the ranks and scatters them.
Every rank then runs the same number of forward and backward passes (a rank with fewer
micro-batches runs zero-weight ones: ZeRO-3 gathers parameters in every forward, a collective
all ranks must join); each micro-batch's loss is weighted by its tokens over the mini-batch's
tokens on all ranks (all-reduced) times the world size, since DeepSpeed averages gradients
over ranks: N ranks take the very step one rank takes, up to summation order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from paretopo.config import LossConfig
from paretopo.core.loss import dapo_policy_loss, kl_k3_sum
from paretopo.errors import FailedPrecondition
from services.learner.backends import build_backend
from services.learner.backends.base import Backend, UpdateStats, batch_logprobs
from services.learner.batch import PolicyBatch, chunks
from services.learner.config import BackendConfig, OptimConfig, RunConfig


def world_size() -> int:
    """Ranks of this learner (torchrun's WORLD_SIZE; 1 when started alone)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


@dataclass(frozen=True)
class Shard:
    """One rank's trajectories of one mini-batch, and their advantages."""

    batch: PolicyBatch | None  # None: this rank has no row of the mini-batch
    advantages: torch.Tensor


def shard_batch(batch: PolicyBatch, advantages: torch.Tensor, mini_batches: int,
                world: int) -> list[list[Shard]]:
    """[rank][mini-batch] -> Shard: the mini-batches `policy_update` would take, each split
    round-robin over `world` ranks."""
    out: list[list[Shard]] = [[] for _ in range(world)]
    for mini in chunks(len(batch), -(-len(batch) // mini_batches)):
        ids = torch.arange(len(batch))[mini]
        for r in range(world):
            rows = ids[r::world]
            out[r].append(Shard(batch.rows(rows) if len(rows) else None, advantages[rows]))
    return out


def _sum(values: list[float], device: torch.device) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _max(value: int, device: torch.device) -> int:
    t = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def _dummy(backend: Backend) -> torch.Tensor:
    """A forward pass over one two-token row (keeps ranks' collectives in step)."""
    ids = torch.zeros((1, 2), dtype=torch.long, device=backend.device)
    return backend.logits(ids, torch.ones_like(ids))


def _comm_device(backend: Backend) -> torch.device:
    return backend.device if backend.device.type == "cuda" else torch.device("cpu")


@torch.no_grad()
def _logprobs(backend: Backend, shards: list[Shard], micro: int) -> list[torch.Tensor | None]:
    """log π (rows, T-1) of every shard under the current policy, forward counts equalised."""
    backend.train(False)
    plan = [(i, part) for i, s in enumerate(shards) if s.batch is not None
            for part in chunks(len(s.batch), micro)]
    out: list[torch.Tensor | None] = [
        torch.zeros(s.batch.loss_mask.shape) if s.batch is not None else None for s in shards]
    for k in range(_max(len(plan), _comm_device(backend))):
        if k >= len(plan):
            _dummy(backend)
            continue
        i, part = plan[k]
        sub = shards[i].batch.rows(part).to(backend.device)
        logp, _ = batch_logprobs(backend, sub)
        out[i][part, : logp.shape[1]] = logp.float().cpu()
    return out


def sharded_update(backend: Backend, shards: list[Shard], loss: LossConfig, *,
                   micro_batch_size: int) -> UpdateStats:
    """This rank's part of the step (every rank calls it with its shards, same count of
    mini-batches); the statistics returned are over all ranks."""
    world, device = dist.get_world_size(), _comm_device(backend)
    old = _logprobs(backend, shards, micro_batch_size)
    backend.train(True)
    totals = [0.0, 0.0, 0.0, 0.0]  # loss·tokens, clip·tokens, entropy sum, tokens
    grad_norms = []
    for m, shard in enumerate(shards):
        local = int(shard.batch.loss_mask.sum()) if shard.batch is not None else 0
        (mini_tokens,) = _sum([float(local)], device)
        if mini_tokens == 0:
            continue
        parts = [] if shard.batch is None else [
            torch.arange(len(shard.batch))[p] for p in chunks(len(shard.batch), micro_batch_size)]
        parts = [rows for rows in parts if bool(shard.batch.loss_mask[rows].any())]
        count = _max(len(parts), device)
        for i in range(count):
            last = i == count - 1
            if i >= len(parts):
                backend.backward(_dummy(backend).sum() * 0.0, last=last)
                continue
            rows = parts[i]
            sub = shard.batch.rows(rows).to(backend.device)
            n_tok, width = int(sub.loss_mask.sum()), sub.loss_mask.shape[1]
            logp, entropy = batch_logprobs(backend, sub)
            value, stats = dapo_policy_loss(
                logp, old[m][rows, :width].to(logp.device),
                shard.advantages[rows].to(logp.device), sub.loss_mask, loss.eps_low,
                loss.eps_high)
            backend.backward(value * (n_tok * world / mini_tokens), last=last)
            totals[0] += value.item() * n_tok
            totals[1] += stats.clip_fraction * n_tok
            totals[2] += float(entropy[sub.loss_mask].sum())
            totals[3] += n_tok
        grad_norms.append(backend.step())
    # KL(π_old ‖ π_new) over all ranks' tokens, after the last step (as `policy_update`).
    kl_sum = 0.0
    if grad_norms:
        new = _logprobs(backend, shards, micro_batch_size)
        for m, shard in enumerate(shards):
            if shard.batch is not None:
                kl_sum += kl_k3_sum(new[m], old[m], shard.batch.loss_mask)
    backend.train(True)
    loss_sum, clip_sum, entropy_sum, tokens, kl_sum = _sum([*totals, kl_sum], device)
    denom = max(tokens, 1.0)
    return UpdateStats(loss=loss_sum / denom, clip_fraction=clip_sum / denom,
                       approx_kl=kl_sum / denom, entropy=entropy_sum / denom,
                       grad_norm=sum(grad_norms) / max(len(grad_norms), 1), tokens=int(tokens),
                       optimizer_steps=len(grad_norms))


def scatter_shards(shards: list[list[Shard]] | None) -> list[Shard]:
    """Rank 0 passes every rank's shards; each rank gets its own."""
    mine: list = [None]
    dist.scatter_object_list(mine, shards if dist.get_rank() == 0 else None, src=0)
    return mine[0]


def broadcast(obj: object = None) -> object:
    """Rank 0's `obj` on every rank."""
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


# ------------------------------------------------------------------ the learner's ranks
# Rank 0 runs the learner (`loop.Learner`: Redis, the archive, metrics, publishing); every
# other rank runs `follow`, doing what rank 0's backend asks of all ranks: build the same
# engine, its share of each update, the ZeRO-3 gather of a published or checkpointed policy,
# and its part of the engine checkpoint.


def init(backend: BackendConfig) -> None:
    """Join torchrun's process group (a learner of several ranks is a DeepSpeed learner)."""
    if backend.name != "deepspeed":
        raise FailedPrecondition(
            f"{world_size()} ranks need backend.name: deepspeed (the torch backend trains on "
            "one device); set it, or start one process")
    from services.learner.backends.deepspeed_backend import init_process_group

    init_process_group(backend)


def _dtype_name(dtype: torch.dtype | None) -> str | None:
    return None if dtype is None else str(dtype).removeprefix("torch.")


class LeaderBackend:
    """Rank 0's backend: each call every rank must join is announced to the followers."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def save_policy(self, path: Path, *, dtype: torch.dtype | None = None) -> None:
        broadcast(("save_policy", _dtype_name(dtype)))
        self.inner.save_policy(path, dtype=dtype)

    def save_checkpoint(self, path: Path) -> None:
        broadcast(("save_checkpoint", str(path)))
        self.inner.save_checkpoint(path)

    def load_checkpoint(self, path: Path) -> None:
        broadcast(("load_checkpoint", str(path)))
        self.inner.load_checkpoint(path)


def build_backend_on_ranks(model_path: Path, optim: OptimConfig, backend: BackendConfig):
    """`build_backend` on every rank (rank 0 tells the followers which weights), wrapped for
    rank 0 when there are several; the plain backend when alone."""
    if world_size() == 1:
        return build_backend(model_path, optim, backend)
    broadcast(("build", str(model_path)))
    return LeaderBackend(build_backend(model_path, optim, backend))


def leader_update(backend: Backend, batch: PolicyBatch, advantages: torch.Tensor,
                  loss: LossConfig, *, mini_batches: int, micro_batch_size: int) -> UpdateStats:
    """Rank 0: scatter the step's mini-batches and take its own share of the update."""
    broadcast(("update", None))
    mine = scatter_shards(shard_batch(batch, advantages, mini_batches, dist.get_world_size()))
    return sharded_update(backend, mine, loss, micro_batch_size=micro_batch_size)


def release() -> None:
    """Rank 0, at the end of a run: the followers exit."""
    if world_size() > 1 and dist.is_initialized() and dist.get_rank() == 0:
        broadcast(("stop", None))


def shutdown() -> None:
    """Every rank, last: leave the process group together (a process that exits with its
    gloo/nccl threads still up aborts: "terminate called without an active exception")."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def exit_now(code: int) -> None:
    """End a process that was part of a process group with `code`, skipping interpreter
    finalisation: there, background C++ threads of the collectives' libraries still
    sometimes abort the process (SIGABRT, "terminate called without an active exception")
    after a run that succeeded, which torchrun would report as a failed rank."""
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def follow(config: RunConfig) -> None:
    """A rank other than 0: serve rank 0's backend calls until it stops."""
    backend: Backend | None = None
    while True:
        command, arg = broadcast()
        if command == "stop":
            return
        if command == "build":
            backend = build_backend(Path(arg), config.optim, config.backend)
            continue
        assert backend is not None, f"{command} before build"
        if command == "update":
            sharded_update(backend, scatter_shards(None), config.algorithm.loss,
                           micro_batch_size=config.optim.micro_batch_size)
        elif command == "save_policy":  # rank 0 writes; the others join a ZeRO-3 gather
            backend.save_policy(Path(os.devnull), dtype=None if arg is None
                                else getattr(torch, arg))
        elif command == "save_checkpoint":
            backend.save_checkpoint(Path(arg))
        elif command == "load_checkpoint":
            backend.load_checkpoint(Path(arg))
        else:
            raise ValueError(f"unknown command from rank 0: {command!r}")
