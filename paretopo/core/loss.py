"""The policy loss: GRPO's clipped surrogate with the DAPO refinements (``algorithm.md``,
"Policy loss"): clip-higher (ε_low ≠ ε_high), a token-level mean over every generated token
of the batch, and an optional k3 KL penalty toward a frozen reference policy (off by default).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["LossStats", "dapo_policy_loss", "kl_k3_sum"]


@dataclass(frozen=True)
class LossStats:
    """Diagnostics over the masked tokens of one loss evaluation."""

    clip_fraction: float  # share of tokens whose clipped term is the active one
    approx_kl: float  # k3 estimate of KL(π_old ‖ π_θ) on tokens sampled from π_old
    ratio_mean: float  # mean of π_θ / π_old


def _masked_mean(x: torch.Tensor, mask: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    return torch.where(mask, x, torch.zeros_like(x)).sum() / count


def _k3(log_ratio: torch.Tensor) -> torch.Tensor:
    # k3 = (r − 1) − log r with r = p/q on samples of q: unbiased and never negative.
    return torch.expm1(log_ratio) - log_ratio


def kl_k3_sum(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor) -> float:
    """Sum over the masked tokens of the k3 estimate of KL(π_old ‖ π_θ) (tokens from π_old).

    A sum, not a mean, so that a caller measuring a batch in micro-batches divides once by
    the batch's token count.

    >>> kl_k3_sum(torch.zeros(1, 2), torch.zeros(1, 2), torch.tensor([[1, 1]]))
    0.0
    """
    log_ratio = (logp - old_logp).float()
    return float(torch.where(mask.to(torch.bool), _k3(log_ratio),
                             torch.zeros_like(log_ratio)).sum())


def dapo_policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    eps_low: float = 0.2,
    eps_high: float = 0.28,
    *,
    kl_coef: float = 0.0,
    ref_logp: torch.Tensor | None = None,
) -> tuple[torch.Tensor, LossStats]:
    """Clipped-surrogate policy loss, token-level mean over the batch.

    ``L = −(1/Σ_i|o_i|) Σ_i Σ_t min(ratio·A_i, clip(ratio, 1 − ε_low, 1 + ε_high)·A_i)``
    with ``ratio = exp(logp − old_logp)``, plus ``kl_coef`` times the masked mean of the k3
    estimate of ``KL(π_θ ‖ π_ref)`` when ``kl_coef > 0``.

    Parameters
    ----------
    logp : torch.Tensor, shape (N, T)
        Log-probabilities of the sampled tokens under the current policy (differentiable).
    old_logp : torch.Tensor, shape (N, T)
        The same under the policy that generated the rollouts (treated as constant).
    advantages : torch.Tensor, shape (N,)
        One advantage per trajectory.
    mask : torch.Tensor, shape (N, T), bool or 0/1
        1 on tokens the model generated; prompt, tool output and padding are 0. Values
        under a 0 are never read, so padding may hold anything (even NaN).
    eps_low, eps_high : float
        Clip range ``[1 − eps_low, 1 + eps_high]``.
    kl_coef : float
        Weight of the KL penalty; needs ``ref_logp`` (N, T) when > 0.

    Returns
    -------
    (torch.Tensor, LossStats)
        Scalar loss and diagnostics.

    Raises
    ------
    ValueError
        Shape mismatch, an all-zero mask, or ``kl_coef > 0`` without ``ref_logp``.

    Examples
    --------
    >>> loss, stats = dapo_policy_loss(torch.log(torch.tensor([[1.5, 1.0]])),
    ...                                torch.zeros(1, 2), torch.tensor([1.0]),
    ...                                torch.tensor([[1, 0]]))
    >>> round(loss.item(), 4), stats.clip_fraction
    (-1.28, 1.0)
    """
    mask = _check_shapes(logp, old_logp, advantages, mask, ref_logp if kl_coef else None)
    count = mask.sum()
    if int(count) == 0:
        raise ValueError("mask selects no token: the loss of an empty batch is undefined")
    zero = torch.zeros_like(logp)
    log_ratio = torch.where(mask, logp, zero) - torch.where(mask, old_logp.detach(), zero)
    ratio = torch.exp(log_ratio)
    adv = advantages.detach().to(logp.dtype).unsqueeze(-1)
    unclipped = ratio * adv
    clipped = ratio.clamp(1.0 - eps_low, 1.0 + eps_high) * adv
    loss = -_masked_mean(torch.minimum(unclipped, clipped), mask, count)
    if kl_coef:
        if ref_logp is None:
            raise ValueError("kl_coef > 0 needs ref_logp")
        ref_log_ratio = torch.where(mask, ref_logp.detach(), zero) - torch.where(mask, logp, zero)
        loss = loss + kl_coef * _masked_mean(_k3(ref_log_ratio), mask, count)
    with torch.no_grad():
        stats = LossStats(
            clip_fraction=float(_masked_mean((clipped < unclipped).to(logp.dtype), mask, count)),
            approx_kl=float(_masked_mean(_k3(log_ratio), mask, count)),
            ratio_mean=float(_masked_mean(ratio, mask, count)),
        )
    return loss, stats


def _check_shapes(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ref_logp: torch.Tensor | None,
) -> torch.Tensor:
    if logp.ndim != 2:
        raise ValueError(f"logp must have shape (N, T), got {tuple(logp.shape)}")
    for name, t in (("old_logp", old_logp), ("mask", mask), ("ref_logp", ref_logp)):
        if t is not None and t.shape != logp.shape:
            raise ValueError(f"{name} shape {tuple(t.shape)} != logp shape {tuple(logp.shape)}")
    if advantages.shape != logp.shape[:1]:
        raise ValueError(
            f"advantages must have shape ({logp.shape[0]},), got {tuple(advantages.shape)}"
        )
    return mask.to(torch.bool)
