"""Stage 1: Eqs. 5–6, the weight move, the archive update and the floored-simplex projection."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from paretopo.config import Stage1Config
from paretopo.core.hypervolume import hypervolume
from paretopo.core.pareto import dominates
from paretopo.core.scalarization import (
    ArchivePoint,
    Stage1State,
    clip_simplex,
    initial_state,
    scalarize,
    update,
)

PROPERTY = settings(deadline=None, print_blob=True, max_examples=40)
SETTINGS = SimpleNamespace(
    beta=0.9, tau=0.01, step_size=0.2, weight_floor=0.05, amplification=1.0,
    reference_point=(0.0, 0.0),
)

unit = st.floats(0.0, 1.0, allow_nan=False)


def test_two_hand_worked_steps():
    s0 = initial_state([0.6, 0.4])
    s1, info = update(s0, [0.5, 0.2], SETTINGS, step=0)
    # Empty archive: ΔHV = 0.5·0.2; G = 0.9·0 + 0.1·0.1 (Eq. 5); ρ = tanh(0.01/0.01) (Eq. 6).
    assert info.delta_hv == pytest.approx(0.1)
    assert info.gain == pytest.approx(0.01)
    assert info.rho == pytest.approx(math.tanh(1.0))
    # ∇(y1·y2) = (0.2, 0.5), normalised (2/7, 5/7); move α(1 − ρ).
    assert info.gradient == pytest.approx((2 / 7, 5 / 7))
    move = 0.2 * (1 - math.tanh(1.0))
    expected = ((1 - move) * 0.6 + move * 2 / 7, (1 - move) * 0.4 + move * 5 / 7)
    assert info.weights == pytest.approx(expected) and s1.weights == info.weights
    assert info.added and s1.archive == (ArchivePoint((0.5, 0.2), 0),)
    assert info.hypervolume == pytest.approx(0.1) and s1.step == 0

    s2, info = update(s1, [0.3, 0.6], SETTINGS, step=1)
    # HV({(.5,.2), (.3,.6)}) = 0.1 + 0.18 − 0.3·0.2 = 0.22, so ΔHV = 0.12.
    assert info.delta_hv == pytest.approx(0.12)
    assert info.gain == pytest.approx(0.9 * 0.01 + 0.1 * 0.12)
    assert info.rho == pytest.approx(math.tanh(2.1))
    # g1 = 0.6 − 0.2 (the archive point beyond y1 covers up to 0.2); g2 = 0.3 − 0.
    assert info.gradient == pytest.approx((4 / 7, 3 / 7))
    assert [p.step for p in s2.archive] == [0, 1]
    assert info.hypervolume == pytest.approx(0.22)


def test_dominated_outcome_decays_gain_and_moves_weights_to_uniform():
    s1, _ = update(initial_state([0.6, 0.4]), [0.8, 0.8], SETTINGS, step=0)
    s2, info = update(s1, [0.5, 0.5], SETTINGS, step=1)
    assert info.delta_hv == 0.0 and not info.added
    assert info.gain == pytest.approx(0.9 * s1.gain)
    assert info.gradient == (0.5, 0.5)
    assert s2.archive == s1.archive
    # A duplicate of an archive point does not enter either; the older step stays.
    s3, info = update(s2, [0.8, 0.8], SETTINGS, step=2)
    assert not info.added and s3.archive == (ArchivePoint((0.8, 0.8), 0),)


def test_weights_hold_while_front_grows_fast():
    # ρ ≈ 1 when G ≫ τ: the weights barely move.
    state = Stage1State(weights=(0.6, 0.4), gain=1.0, rho=math.tanh(100.0), step=3)
    new, info = update(state, [0.9, 0.1], SETTINGS, step=4)
    assert info.rho > 0.999999
    assert new.weights == pytest.approx((0.6, 0.4), abs=1e-6)


def test_errors():
    s = initial_state([0.6, 0.4])
    with pytest.raises(ValueError, match="objectives"):
        update(s, [0.5, 0.2, 0.1], SETTINGS, step=0)
    with pytest.raises(ValueError, match="finite"):
        update(s, [float("nan"), 0.2], SETTINGS, step=0)
    s1, _ = update(s, [0.5, 0.2], SETTINGS, step=5)
    with pytest.raises(ValueError, match="already applied"):
        update(s1, [0.6, 0.2], SETTINGS, step=5)


def test_pydantic_config_satisfies_settings_protocol():
    config = Stage1Config()
    _, info = update(initial_state(config.initial_weights), [0.5, 0.2], config, step=0)
    assert info.added


@PROPERTY
@given(st.lists(st.tuples(unit, unit), min_size=1, max_size=12), st.floats(0.0, 0.5))
def test_stage1_invariants_over_a_run(outcomes, floor):
    settings_ = SimpleNamespace(**{**vars(SETTINGS), "weight_floor": floor})
    state = initial_state([0.6, 0.4])
    frozen = state.to_dict()
    previous_hv = 0.0
    for step, y in enumerate(outcomes):
        new, info = update(state, list(y), settings_, step=step)
        assert state.to_dict() == frozen, "update mutated its input state"
        assert info.delta_hv >= 0.0
        if any(np.all(np.asarray(p.values) >= np.asarray(y)) for p in state.archive):
            assert info.delta_hv == 0.0
        assert info.gain >= 0.0 and 0.0 <= info.rho < 1.0
        assert min(new.weights) >= floor - 1e-12 and sum(new.weights) == pytest.approx(1.0)
        assert sum(info.gradient) == pytest.approx(1.0)
        values = [p.values for p in new.archive]
        assert not any(dominates(a, b) for a in values for b in values)
        assert info.hypervolume >= previous_hv - 1e-12
        assert info.hypervolume == pytest.approx(hypervolume(np.array(values), (0.0, 0.0)))
        previous_hv = info.hypervolume
        state, frozen = new, new.to_dict()


@PROPERTY
@given(st.lists(st.tuples(unit, unit, unit), min_size=1, max_size=6))
def test_state_round_trips_through_json_exactly(outcomes):
    settings_ = SimpleNamespace(**{**vars(SETTINGS), "reference_point": (0.0, 0.0, 0.0)})
    state = initial_state([0.5, 0.3, 0.2])
    for step, y in enumerate(outcomes):
        state, _ = update(state, y, settings_, step=step)
    assert Stage1State.from_dict(json.loads(json.dumps(state.to_dict()))) == state


def test_from_dict_names_missing_key():
    with pytest.raises(ValueError, match="'gain'"):
        Stage1State.from_dict({"weights": [1.0], "archive": [], "rho": 0.0, "step": -1})


def on_floored_simplex(w, floor):
    return min(w) >= floor - 1e-12 and abs(sum(w) - 1.0) < 1e-9


@PROPERTY
@given(st.lists(st.floats(-3, 3), min_size=2, max_size=5), st.floats(0.0, 1.0))
def test_clip_simplex_is_the_euclidean_projection(weights, floor_share):
    m = len(weights)
    floor = floor_share / m
    p = np.asarray(clip_simplex(weights, floor))
    assert on_floored_simplex(p, floor)
    # Variational inequality: (v − p)·(q − p) <= 0 for every q of the set; it is linear in
    # q, so checking the vertices floor + (1 − M·floor)·e_k suffices.
    for k in range(m):
        vertex = np.full(m, floor)
        vertex[k] += 1 - m * floor
        assert np.dot(np.asarray(weights) - p, vertex - p) <= 1e-9
    assert clip_simplex(tuple(p), floor) == pytest.approx(tuple(p), abs=1e-12)  # idempotent


def test_clip_simplex_examples_and_errors():
    assert clip_simplex([0.98, 0.02], 0.05) == pytest.approx((0.95, 0.05))
    assert clip_simplex([0.5, 0.5], 0.05) == (0.5, 0.5)
    assert clip_simplex([0.2, 0.2, 0.2], 0.0) == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    with pytest.raises(ValueError, match="floor"):
        clip_simplex([0.5, 0.5], 0.6)
    with pytest.raises(ValueError, match="finite"):
        clip_simplex([float("inf"), 0.5], 0.0)


def test_scalarize_torch_and_numpy():
    r = torch.tensor([[[1.0, 0.0], [0.5, 1.0]]])
    assert torch.allclose(scalarize(r, (0.6, 0.4)), torch.tensor([[0.6, 0.7]]))
    assert scalarize(r.to(torch.float64), (0.6, 0.4)).dtype == torch.float64
    np.testing.assert_allclose(scalarize(np.array([1.0, 2.0]), [0.5, 0.5]), 1.5)
    with pytest.raises(ValueError, match="disagree"):
        scalarize(r, (0.5, 0.3, 0.2))
