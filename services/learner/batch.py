"""Trajectories as tensors, and per-token log-probabilities under a causal LM.

A row is `prompt_ids + completion_ids`, right-padded. Log-probabilities are of tokens 1..T-1
given their prefix, shape (N, T-1); `loss_mask` marks the positions whose token the model
generated (the trajectory's own `loss_mask`), so prompt, tool outputs and padding are out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.utils.checkpoint import checkpoint

from paretopo.jobs import TrajectoryRecord

Logits = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class PolicyBatch:
    """input_ids, attention_mask: (N, T); loss_mask: (N, T-1) bool, aligned with log-probs."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    loss_mask: torch.Tensor

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def rows(self, index: torch.Tensor | slice) -> PolicyBatch:
        """A sub-batch, trimmed to its longest row (less padding to compute)."""
        ids, attn = self.input_ids[index], self.attention_mask[index]
        width = max(int(attn.sum(-1).max()), 2)
        return PolicyBatch(ids[:, :width], attn[:, :width], self.loss_mask[index][:, : width - 1])

    def to(self, device: torch.device | str) -> PolicyBatch:
        return PolicyBatch(self.input_ids.to(device), self.attention_mask.to(device),
                           self.loss_mask.to(device))


def collate(trajectories: Sequence[TrajectoryRecord], pad_id: int) -> PolicyBatch:
    """Right-padded tensors of `trajectories` (prompt then completion)."""
    if not trajectories:
        raise ValueError("collate needs at least one trajectory")
    lengths = [len(t.prompt_ids) + len(t.completion_ids) for t in trajectories]
    width = max(max(lengths), 2)
    ids = torch.full((len(trajectories), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(trajectories), width), dtype=torch.long)
    mask = torch.zeros((len(trajectories), width - 1), dtype=torch.bool)
    for r, t in enumerate(trajectories):
        p, n = len(t.prompt_ids), lengths[r]
        if p == 0:
            raise ValueError(f"trajectory {t.sample_index} has no prompt tokens")
        ids[r, :n] = torch.tensor([*t.prompt_ids, *t.completion_ids], dtype=torch.long)
        attn[r, :n] = 1
        # Log-prob index j scores token j+1: completion token i sits at p+i, index p+i-1.
        mask[r, p - 1 : n - 1] = torch.tensor(t.loss_mask, dtype=torch.bool)
    return PolicyBatch(ids, attn, mask)


def first_scored(batch: PolicyBatch) -> list[int]:
    """Per row, the first log-prob index the loss reads (the logit of the position before its
    first generated token); the row's last position for a row with none."""
    lengths = batch.attention_mask.sum(1)
    scored = batch.loss_mask.any(1)
    first = batch.loss_mask.int().argmax(1)
    return torch.where(scored, first, lengths - 1).tolist()


def token_logprobs(
    logits: torch.Tensor, input_ids: torch.Tensor, *, chunk: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities (N, T-1) of tokens 1..T-1, and the entropy (N, T-1) of each
    predictive distribution (detached: a diagnostic, never trained on).

    `chunk` > 0 computes them `chunk` sequence positions at a time, so the fp32
    full-vocabulary log-softmax exists for one slice (N, chunk, V) at a time, never for the
    whole micro-batch; under autograd each slice is recomputed in the backward pass (only the
    logits themselves are kept). The result equals the unchunked one (tested to 1e-5, values
    and gradients). `chunk` = 0: all positions at once.
    """
    targets = input_ids[:, 1:]
    width = targets.shape[1]
    if chunk <= 0 or chunk >= width:
        return _slice_logprobs(logits[:, :width], targets), _slice_entropy(logits[:, :width])
    logits = logits[:, :width]  # a view: the last position predicts nothing here
    taken, entropy = [], []
    grad = torch.is_grad_enabled() and logits.requires_grad
    for start in range(0, width, chunk):
        part, tgt = logits[:, start : start + chunk], targets[:, start : start + chunk]
        if grad:
            taken.append(checkpoint(_slice_logprobs, part, tgt, use_reentrant=False))
        else:
            taken.append(_slice_logprobs(part, tgt))
        entropy.append(_slice_entropy(part))
    return torch.cat(taken, dim=1), torch.cat(entropy, dim=1)


def _slice_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[target] in fp32, through logsumexp (no (.., V) log-prob tensor)."""
    x = logits.float()
    picked = x.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(x, dim=-1)


@torch.no_grad()
def _slice_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of softmax(logits) in fp32: logsumexp(x) - sum(softmax(x) * x)."""
    x = logits.float()
    probs = torch.softmax(x, dim=-1)
    return torch.logsumexp(x, dim=-1) - (probs * x).sum(-1)


def chunks(n: int, size: int) -> list[slice]:
    """Consecutive slices of at most `size` covering range(n)."""
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]
