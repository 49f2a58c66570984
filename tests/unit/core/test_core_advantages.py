"""Advantage estimators: Eqs. 7–9, Stage 1, the baselines, the registry and the algorithm table."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from paretopo.core.advantages import (
    ADVANTAGE_ESTIMATORS,
    ALGORITHMS,
    AdvantageInputs,
    compute_advantages,
    estimator_for,
    fixed_weight,
    grpo,
    mo_grpo,
    nonzero_groups,
    otc_grpo,
    pareto_rank_advantages,
    pareto_rank_advantages_reference,
    stage1_advantages,
)
from paretopo.core.pareto import pareto_ranks

PROPERTY = settings(deadline=None, print_blob=True, max_examples=60)
W2 = (0.6, 0.4)


def test_eqs_7_to_9_hand_worked():
    # A=(1,.2) B=(0,1) | C=(1,.1) D=(0,.5) | E=(0,0): ranks 1,1,2,2,3 and K = 3.
    r = torch.tensor([[[1, 0.2], [0, 1], [1, 0.1], [0, 0.5], [0, 0]]], dtype=torch.float64)
    assert pareto_ranks(r).tolist() == [[1, 1, 2, 2, 3]]
    # b = (K − k)/(K − 1) = 1, 1, .5, .5, 0 (Eq. 7). w·r = .68, .4, .64, .2, 0, so within
    # each front s = 1, 0 | 1, 0 | 0 (Eq. 8). Â = b + .5·s/2 = 1.25, 1, .75, .5, 0 (Eq. 9),
    # mean 0.7.
    expected = torch.tensor([[0.55, 0.3, 0.05, -0.2, -0.7]], dtype=torch.float64)
    assert torch.allclose(pareto_rank_advantages(r, W2, 0.5), expected)
    assert torch.allclose(pareto_rank_advantages_reference(r, W2, 0.5), expected)


def test_single_rank_and_identical_outcomes_give_zeros():
    same = torch.tensor([[[0.3, 0.7]] * 5, [[1.0, 0.1]] * 5])
    for estimator in ADVANTAGE_ESTIMATORS.values():
        adv = estimator(same, AdvantageInputs(weights=W2, rho=0.5))
        assert torch.equal(adv, torch.zeros(2, 5))
    assert not nonzero_groups(pareto_rank_advantages(same, W2)).any()


def test_baselines_hand_worked():
    r = torch.tensor([[[1.0, 1.0], [1.0, 0.5], [0.0, 1.0], [0.0, 0.0]]])
    # r_acc = 1,1,0,0: mean .5, population std .5.
    one = 0.5 / (0.5 + 1e-6)
    assert torch.allclose(grpo(r), torch.tensor([[one, one, -one, -one]]))
    # r_tool·r_acc = 1, .5, 0, 0: mean .375, std sqrt(((.625)²+(.125)²+2·(.375)²)/4).
    prod = torch.tensor([1.0, 0.5, 0.0, 0.0])
    std = float(torch.sqrt(((prod - 0.375) ** 2).mean()))
    assert torch.allclose(otc_grpo(r), ((prod - 0.375) / (std + 1e-6)).unsqueeze(0))
    # MO-GRPO: per-objective z-scores summed.
    tool = torch.tensor([1.0, 0.5, 1.0, 0.0])
    z_tool = (tool - tool.mean()) / (tool.std(unbiased=False) + 1e-6)
    assert torch.allclose(mo_grpo(r), (grpo(r)[0] + z_tool).unsqueeze(0))
    # Stage 1: (1 + λρ)·GRPO(w·r).
    base = fixed_weight(r, W2)
    assert torch.allclose(stage1_advantages(r, W2, 0.5, amplification=2.0), 2.0 * base)
    assert torch.allclose(stage1_advantages(r, W2, 0.0), base)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(("g", "m"), [(1, 2), (2, 2), (8, 3), (16, 2), (16, 3)])
def test_vectorised_equals_reference(seed, g, m):
    print(f"seed={seed} g={g} m={m}")
    gen = torch.Generator().manual_seed(seed)
    weights = tuple(torch.softmax(torch.randn(m, generator=gen), 0).tolist())
    discrete = torch.randint(0, 3, (40, g, m), generator=gen).to(torch.float64) / 2
    continuous = torch.rand(40, g, m, generator=gen, dtype=torch.float64)
    for r in (discrete, continuous):
        fast = pareto_rank_advantages(r, weights, 0.3)
        slow = pareto_rank_advantages_reference(r, weights, 0.3)
        torch.testing.assert_close(fast, slow, rtol=0, atol=1e-12)


groups = st.integers(1, 10).flatmap(
    lambda g: st.lists(
        st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=g, max_size=g),
        min_size=1,
        max_size=4,
    )
)
eps_values = st.floats(0.0, 0.99)
weight_values = st.floats(0.0, 1.0).map(lambda a: (a, 1.0 - a))


@PROPERTY
@given(groups, weight_values, eps_values)
def test_pareto_advantage_invariants(batch, weights, eps):
    r = torch.tensor(batch, dtype=torch.float64) / 4
    adv = pareto_rank_advantages(r, weights, eps)
    ranks = pareto_ranks(r)
    assert adv.shape == ranks.shape
    assert torch.all(adv.abs() <= 1 + eps + 1e-12)
    torch.testing.assert_close(adv.sum(-1), torch.zeros(len(batch), dtype=r.dtype))
    # A worse rank never gets a higher advantage than a better rank.
    worse = ranks.unsqueeze(-1) > ranks.unsqueeze(-2)
    higher = adv.unsqueeze(-1) > adv.unsqueeze(-2)
    assert not torch.any(worse & higher)


@PROPERTY
@given(groups, weight_values, eps_values, st.floats(0.1, 10.0), st.floats(-5.0, 5.0))
def test_pareto_advantages_affine_invariant(batch, weights, eps, scale, shift):
    r = torch.tensor(batch, dtype=torch.float64) / 4
    adv = pareto_rank_advantages(r, weights, eps)
    moved = pareto_rank_advantages(r * scale + shift, weights, eps)
    torch.testing.assert_close(moved, adv, rtol=0, atol=1e-9)


@PROPERTY
@given(groups, st.floats(0.1, 10.0), st.floats(-5.0, 5.0))
def test_group_normalised_baselines_affine_invariant(batch, scale, shift):
    r = torch.tensor(batch, dtype=torch.float64) / 4
    for name in ("grpo", "mo_grpo", "fixed_weight"):
        inputs = AdvantageInputs(weights=W2)
        adv = compute_advantages(name, r, inputs)
        moved = compute_advantages(name, r * scale + shift, inputs)
        # Only the 1e-6 beside std (>= 0.007 here after scaling) separates them.
        torch.testing.assert_close(moved, adv, rtol=1e-3, atol=1e-4)


def test_registry_dispatch_and_errors():
    assert set(ADVANTAGE_ESTIMATORS) == {
        "grpo", "otc_grpo", "mo_grpo", "fixed_weight", "stage1", "pareto_rank", "scalar_grpo"
    }
    r = torch.rand(3, 6, 2, generator=torch.Generator().manual_seed(0))
    inputs = AdvantageInputs(weights=W2, rho=0.4, amplification=0.5, pareto_eps=0.2)
    assert torch.equal(compute_advantages("pareto_rank", r, inputs),
                       pareto_rank_advantages(r, W2, 0.2))
    assert torch.equal(compute_advantages("stage1", r, inputs),
                       stage1_advantages(r, W2, 0.4, amplification=0.5))
    assert torch.equal(compute_advantages("scalar_grpo", r, inputs), fixed_weight(r, W2))
    with pytest.raises(ValueError, match="unknown advantage estimator"):
        compute_advantages("ppo", r, inputs)
    with pytest.raises(ValueError, match=r"needs AdvantageInputs\.weights"):
        compute_advantages("pareto_rank", r, AdvantageInputs())
    with pytest.raises(ValueError, match=r"\(B, G, M\)"):
        compute_advantages("grpo", r[0], inputs)
    with pytest.raises(ValueError, match="eps"):
        pareto_rank_advantages(r, W2, 1.0)


def test_inputs_are_not_mutated():
    r = torch.rand(4, 5, 2, generator=torch.Generator().manual_seed(1))
    copy = r.clone()
    for name in ADVANTAGE_ESTIMATORS:
        compute_advantages(name, r, AdvantageInputs(weights=W2, rho=0.3))
    assert torch.equal(r, copy)


def test_algorithm_table():
    assert len(ALGORITHMS) == 9
    table = {a: (estimator_for(a, 1), estimator_for(a, 2)) for a in ALGORITHMS}
    assert table["paretopo"] == ("stage1", "pareto_rank")
    assert table["no_stage1"] == ("pareto_rank", "pareto_rank")
    assert table["no_stage2"] == ("stage1", "stage1")
    assert table["no_dynamic_weighting"] == ("stage1", "pareto_rank")
    assert table["no_pareto_ranking"] == ("stage1", "scalar_grpo")
    for baseline in ("grpo", "otc_grpo", "mo_grpo", "fixed_weight"):
        assert table[baseline] == (baseline, baseline)
    assert all(name in ADVANTAGE_ESTIMATORS for pair in table.values() for name in pair)
    with pytest.raises(ValueError, match="unknown algorithm"):
        estimator_for("dpo", 1)
    with pytest.raises(ValueError, match="stage"):
        estimator_for("paretopo", 3)


def test_nonzero_groups():
    adv = torch.tensor([[0.0, 0.0, 0.0], [1e-3, -1e-3, 0.0], [0.5, -0.5, 0.0]])
    assert nonzero_groups(adv).tolist() == [False, True, True]
    assert nonzero_groups(adv, atol=1e-2).tolist() == [False, False, True]
    # Equal rewards that do not sum exactly still give an exactly-zero GRPO group.
    r = torch.full((1, 3, 2), 0.1, dtype=torch.float64)
    assert not nonzero_groups(grpo(r)).any()
    assert np.isfinite(grpo(torch.rand(2, 1, 2)).numpy()).all()  # G = 1 is defined


def test_equal_scores_stay_tied_after_an_affine_change():
    """Found by the property above: w·r of two front points ties exactly before the change and
    differs in the last bits after it; Eq. 8 must still see a tie."""
    r = torch.tensor([[[0.25, 1.0], [0.5, 0.75]]], dtype=torch.float64)
    moved = r * 1.2274565527118018 + 4.0
    for rewards in (r, moved):
        torch.testing.assert_close(pareto_rank_advantages(rewards, (0.5, 0.5), 0.5),
                                   torch.zeros(1, 2, dtype=torch.float64))
