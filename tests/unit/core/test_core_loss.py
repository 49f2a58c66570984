"""The DAPO policy loss: hand-worked clipping, token-level averaging, masking, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from paretopo.core.loss import LossStats, dapo_policy_loss


def test_hand_worked_clipping():
    # Trajectory 0 (A = +1), tokens with ratio 1.5, 1.1, padding.
    # Trajectory 1 (A = −1), tokens with ratio 0.5, 1.0, 1.2.
    ratios = torch.tensor([[1.5, 1.1, 1.0], [0.5, 1.0, 1.2]], dtype=torch.float64)
    logp = torch.log(ratios).requires_grad_()
    old = torch.zeros(2, 3, dtype=torch.float64)
    adv = torch.tensor([1.0, -1.0], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    loss, stats = dapo_policy_loss(logp, old, adv, mask, eps_low=0.2, eps_high=0.28)
    # A = +1: min(1.5, clip→1.28) = 1.28 (clipped); min(1.1, 1.1) = 1.1.
    # A = −1: min(−0.5, −clip(0.5)=−0.8) = −0.8 (clipped); −1.0; min(−1.2, −1.2) = −1.2.
    # Token-level mean over 5 tokens, negated.
    expected = -(1.28 + 1.1 - 0.8 - 1.0 - 1.2) / 5
    assert loss.item() == pytest.approx(expected)
    assert stats.clip_fraction == pytest.approx(2 / 5)
    assert stats.ratio_mean == pytest.approx((1.5 + 1.1 + 0.5 + 1.0 + 1.2) / 5)
    k3 = [r - 1 - math.log(r) for r in (1.5, 1.1, 0.5, 1.0, 1.2)]
    assert stats.approx_kl == pytest.approx(sum(k3) / 5)
    loss.backward()
    # d/dlogp of −ratio·A/5 is −ratio·A/5 on unclipped tokens and 0 on clipped or masked ones.
    grad = torch.tensor([[0.0, -1.1 / 5, 0.0], [0.0, 1.0 / 5, 1.2 / 5]], dtype=torch.float64)
    torch.testing.assert_close(logp.grad, grad)


def test_token_level_mean_weights_long_trajectories_more():
    # Same per-token term everywhere: the mean is over tokens, not over trajectories.
    logp = torch.zeros(2, 4)
    mask = torch.tensor([[1, 0, 0, 0], [1, 1, 1, 1]])
    loss, _ = dapo_policy_loss(logp, logp, torch.tensor([1.0, -1.0]), mask)
    assert loss.item() == pytest.approx(-(1 - 4) / 5)


def test_masked_positions_are_never_read():
    logp = torch.tensor([[0.1, float("nan")], [0.0, float("-inf")]], requires_grad=True)
    old = torch.tensor([[0.0, float("nan")], [0.0, 0.0]])
    mask = torch.tensor([[True, False], [True, False]])
    loss, stats = dapo_policy_loss(logp, old, torch.tensor([1.0, 2.0]), mask)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logp.grad).all()
    assert logp.grad[0, 1] == 0 and logp.grad[1, 1] == 0
    assert isinstance(stats, LossStats) and math.isfinite(stats.approx_kl)


def test_on_policy_gradient_is_the_policy_gradient():
    # At ratio 1 nothing is clipped: dL/dlogp = −A / (number of tokens).
    logp = torch.randn(3, 5, generator=torch.Generator().manual_seed(0)).requires_grad_()
    adv = torch.tensor([0.5, -1.0, 2.0])
    mask = torch.ones(3, 5)
    loss, stats = dapo_policy_loss(logp, logp.detach(), adv, mask)
    loss.backward()
    torch.testing.assert_close(logp.grad, (-adv / 15).unsqueeze(-1).expand(3, 5))
    assert stats.clip_fraction == 0.0 and stats.approx_kl == pytest.approx(0.0, abs=1e-7)


def test_kl_term():
    logp = torch.zeros(1, 2, requires_grad=True)
    ref = torch.log(torch.tensor([[2.0, 0.5]]))
    mask = torch.ones(1, 2)
    base, _ = dapo_policy_loss(logp, logp.detach(), torch.tensor([0.0]), mask)
    with_kl, _ = dapo_policy_loss(
        logp, logp.detach(), torch.tensor([0.0]), mask, kl_coef=0.1, ref_logp=ref
    )
    # k3 with r = π_ref/π_θ: (2 − 1 − ln 2 + 0.5 − 1 − ln 0.5)/2 = 0.25.
    assert (with_kl - base).item() == pytest.approx(0.1 * 0.25)
    with pytest.raises(ValueError, match="ref_logp"):
        dapo_policy_loss(logp, logp.detach(), torch.tensor([0.0]), mask, kl_coef=0.1)


def test_errors():
    z = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="mask selects no token"):
        dapo_policy_loss(z, z, torch.zeros(2), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="advantages"):
        dapo_policy_loss(z, z, torch.zeros(3), torch.ones(2, 3))
    with pytest.raises(ValueError, match="old_logp"):
        dapo_policy_loss(z, torch.zeros(2, 4), torch.zeros(2), torch.ones(2, 3))


def test_micro_batching_invariance():
    # Summing per-micro-batch losses weighted by their token share equals the full batch.
    gen = torch.Generator().manual_seed(3)
    logp, old = torch.randn(8, 6, generator=gen), torch.randn(8, 6, generator=gen)
    adv = torch.randn(8, generator=gen)
    mask = torch.rand(8, 6, generator=gen) > 0.3
    full, _ = dapo_policy_loss(logp, old, adv, mask)
    total = mask.sum()
    parts = sum(
        dapo_policy_loss(logp[i : i + 1], old[i : i + 1], adv[i : i + 1], mask[i : i + 1])[0]
        * mask[i].sum() / total
        for i in range(8)
        if mask[i].any()
    )
    assert parts.item() == pytest.approx(full.item(), rel=1e-6)
