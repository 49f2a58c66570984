"""What the learner needs from a training backend, and the update step written once over it.

A backend owns the model and the optimizer: it runs a forward pass, a backward pass and an
optimizer step, and saves/restores its state. `policy_update` is the GRPO/DAPO update of
`algorithm.md` ("Policy loss") on top of those three primitives, so torch and DeepSpeed run
exactly the same maths.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from transformers import DynamicCache, PretrainedConfig

from paretopo.config import LossConfig
from paretopo.core.loss import dapo_policy_loss, kl_k3_sum
from paretopo.shared_prefix import prefixed_logits, realign, split_rows
from services.learner.batch import PolicyBatch, chunks, first_scored, token_logprobs


class Backend(Protocol):
    """A policy plus its optimizer on some device(s)."""

    device: torch.device

    config: PretrainedConfig  # the policy's model configuration
    share_prefixes: bool  # `batch_logprobs` runs each distinct prompt once

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *,
               position_ids: torch.Tensor | None = None, cache: DynamicCache | None = None,
               ) -> torch.Tensor:
        """Forward pass (N, T) -> (N, T, V), differentiable when grad is enabled; with a
        `cache`, the rows continue the cached keys and values (and extend the cache)."""

    def train(self, mode: bool) -> None:
        """Training or evaluation mode (dropout)."""

    def backward(self, loss: torch.Tensor, *, last: bool = True) -> None:
        """Accumulate the gradient of `loss`; `last` marks the final micro-batch before
        `step()` (DeepSpeed reduces the accumulated gradients at that backward)."""

    def step(self) -> float:
        """Clip, apply and zero the accumulated gradient; returns the pre-clip grad norm."""

    def save_policy(self, path: Path, *, dtype: torch.dtype | None = None) -> None:
        """Write the weights in Hugging Face format (with the tokenizer) into `path`, in
        `dtype` (None: the backend's publishing dtype, `backend.published_dtype`)."""

    def optimizer_state(self) -> dict[str, Any]:
        """The optimizer's state dict (for checkpoints)."""

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        """Restore `optimizer_state()`."""


@dataclass(frozen=True)
class UpdateStats:
    """Means over the optimizer steps of one training step (token-weighted where per token)."""

    loss: float
    clip_fraction: float
    approx_kl: float  # KL(π_old ‖ π_new) over the batch, measured after the last step
    entropy: float
    grad_norm: float
    tokens: int
    optimizer_steps: int


def _chunk(backend: Backend) -> int:
    """Sequence positions per log-softmax slice (`backend.logprob_chunk`, 0: unchunked)."""
    return int(getattr(backend, "logprob_chunk", 0))


def batch_logprobs(backend: Backend, batch: PolicyBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """`token_logprobs` (N, T-1) of a micro-batch under the backend's policy, with the tokens
    before each row's first scored one (its prompt, shared by its group) run once per
    distinct prompt: the same numbers at a fraction of the compute (`paretopo.shared_prefix`).
    Indices before a row's first scored token read 0."""
    cuts = first_scored(batch)
    if not backend.share_prefixes or len(batch) == 1 or min(cuts) < 1:
        return token_logprobs(backend.logits(batch.input_ids, batch.attention_mask),
                              batch.input_ids, chunk=_chunk(backend))
    rows = split_rows(batch.input_ids, batch.attention_mask, cuts)
    logits = prefixed_logits(
        lambda ids, mask, pos, cache: backend.logits(ids, mask, position_ids=pos, cache=cache),
        backend.config, rows)
    logp, entropy = token_logprobs(logits, rows.suffixes, chunk=_chunk(backend))
    width = batch.loss_mask.shape[1]
    return realign(logp, rows.starts, width), realign(entropy, rows.starts, width)


@torch.no_grad()
def recompute_logprobs(backend: Backend, batch: PolicyBatch, micro_batch_size: int,
                       ) -> torch.Tensor:
    """log π_old (N, T-1) of the rollout tokens under the backend's current policy."""
    backend.train(False)
    out = torch.zeros(batch.loss_mask.shape, dtype=torch.float32)
    for part in chunks(len(batch), micro_batch_size):
        sub = batch.rows(part).to(backend.device)
        logp, _ = batch_logprobs(backend, sub)
        out[part, : logp.shape[1]] = logp.float().cpu()
    return out


@torch.no_grad()
def post_update_kl(backend: Backend, batch: PolicyBatch, old_logp: torch.Tensor,
                   micro_batch_size: int) -> float:
    """Token-mean k3 estimate of KL(π_old ‖ π_θ) over the batch's generated tokens."""
    backend.train(False)
    total, tokens = 0.0, int(batch.loss_mask.sum())
    for part in chunks(len(batch), micro_batch_size):
        sub = batch.rows(part).to(backend.device)
        logp, _ = batch_logprobs(backend, sub)
        width = sub.loss_mask.shape[1]
        total += kl_k3_sum(logp.float().cpu(), old_logp[part, :width], sub.loss_mask.cpu())
    backend.train(True)
    return total / max(tokens, 1)


def policy_update(
    backend: Backend,
    batch: PolicyBatch,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    loss: LossConfig,
    *,
    mini_batches: int,
    micro_batch_size: int,
) -> UpdateStats:
    """DAPO update: `mini_batches` optimizer steps, each over a slice of the trajectories,
    accumulated over micro-batches; each micro-batch loss is weighted by its share of the
    mini-batch's generated tokens, so the result is the token-level mean over the whole
    mini-batch whatever the micro-batch size."""
    backend.train(True)
    totals = {"loss": 0.0, "clip": 0.0, "entropy": 0.0}
    grad_norms, tokens_seen = [], 0
    for mini in chunks(len(batch), -(-len(batch) // mini_batches)):
        mini_ids = torch.arange(len(batch))[mini]
        mini_tokens = int(batch.loss_mask[mini].sum())
        if mini_tokens == 0:
            continue
        parts = [mini_ids[part] for part in chunks(len(mini_ids), micro_batch_size)]
        parts = [rows for rows in parts if bool(batch.loss_mask[rows].any())]
        for i, rows in enumerate(parts):
            sub = batch.rows(rows).to(backend.device)
            n_tok = int(sub.loss_mask.sum())
            width = sub.loss_mask.shape[1]
            logp, entropy = batch_logprobs(backend, sub)
            value, stats = dapo_policy_loss(
                logp, old_logp[rows, :width].to(logp.device), advantages[rows].to(logp.device),
                sub.loss_mask, loss.eps_low, loss.eps_high)
            backend.backward(value * (n_tok / mini_tokens), last=i == len(parts) - 1)
            totals["loss"] += value.item() * n_tok
            totals["clip"] += stats.clip_fraction * n_tok
            totals["entropy"] += float(entropy[sub.loss_mask].sum())
            tokens_seen += n_tok
        grad_norms.append(backend.step())
    denom = max(tokens_seen, 1)
    # The loss's own KL reads each mini-batch before its step (≈ 0 with one mini-batch), so
    # the KL the update moved the policy by is measured with one more forward pass.
    kl = post_update_kl(backend, batch, old_logp, micro_batch_size) if grad_norms else 0.0
    return UpdateStats(
        loss=totals["loss"] / denom, clip_fraction=totals["clip"] / denom,
        approx_kl=kl, entropy=totals["entropy"] / denom,
        grad_norm=sum(grad_norms) / max(len(grad_norms), 1), tokens=tokens_seen,
        optimizer_steps=len(grad_norms))
