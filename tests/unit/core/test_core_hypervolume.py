"""Hypervolume, its contribution and its gradient."""

from __future__ import annotations

import itertools

import moocore
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paretopo.core.hypervolume import hv_contribution, hv_gradient, hypervolume

PROPERTY = settings(deadline=None, print_blob=True, max_examples=60)

unit = st.floats(0.0, 1.0, allow_nan=False)
points2 = st.lists(st.tuples(unit, unit), min_size=0, max_size=8)
points3 = st.lists(st.tuples(unit, unit, unit), min_size=0, max_size=6)


def box_union_volume(points: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume by inclusion-exclusion over the dominated boxes (tiny sets only)."""
    boxes = [p for p in points if np.all(p > ref)]
    total = 0.0
    for k in range(1, len(boxes) + 1):
        for subset in itertools.combinations(boxes, k):
            corner = np.min(subset, axis=0)
            total += (-1) ** (k + 1) * float(np.prod(corner - ref))
    return total


def test_hand_worked():
    # Union of [0,1]x[0,0.5] and [0,0.5]x[0,1]: 0.5 + 0.5 - 0.25.
    assert hypervolume([[1.0, 0.5], [0.5, 1.0]], ref=[0.0, 0.0]) == pytest.approx(0.75)
    assert hypervolume(np.zeros((0, 3)), ref=[0.0, 0.0, 0.0]) == 0.0
    assert hypervolume([[0.5, 1.0]], ref=[0.5, 0.0]) == 0.0  # on the reference: no volume
    assert hypervolume([[-1.0, 2.0], [1.0, 1.0]], ref=[0.0, 0.0]) == pytest.approx(1.0)
    # Minimisation through moocore's convention.
    assert hypervolume([[0.0, 0.5]], ref=[1.0, 1.0], maximise=False) == pytest.approx(0.5)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("m", [2, 3, 4])
def test_matches_moocore_and_inclusion_exclusion(seed, m):
    print(f"seed={seed} m={m}")
    rng = np.random.default_rng(seed)
    ref = np.full(m, 0.1)
    for _ in range(50):
        pts = rng.integers(0, 5, size=(int(rng.integers(1, 7)), m)) / 4  # ties, duplicates
        expected = box_union_volume(pts, ref)
        assert hypervolume(pts, ref) == pytest.approx(expected, abs=1e-12)
        inside = pts[np.all(pts > ref, axis=1)]
        if len(inside):
            assert hypervolume(pts, ref) == moocore.hypervolume(inside, ref=ref, maximise=True)


def test_large_random_sets_match_moocore():
    rng = np.random.default_rng(7)
    for m in (2, 3):
        pts = rng.random((2000, m))
        ref = np.zeros(m)
        assert hypervolume(pts, ref) == pytest.approx(
            moocore.hypervolume(pts, ref=ref, maximise=True), rel=1e-12
        )


@PROPERTY
@given(points3, st.tuples(unit, unit, unit))
def test_monotone_under_adding_a_point(pts, extra):
    archive = np.array(pts, dtype=np.float64).reshape(-1, 3)
    ref = np.zeros(3)
    bigger = np.vstack([archive, extra])
    assert hypervolume(bigger, ref) >= hypervolume(archive, ref) - 1e-12


@PROPERTY
@given(points2, st.tuples(unit, unit))
def test_contribution_is_hv_difference_and_non_negative(pts, y):
    archive = np.array(pts, dtype=np.float64).reshape(-1, 2)
    ref = np.zeros(2)
    delta = hv_contribution(archive, y, ref)
    assert delta >= 0.0
    expected = hypervolume(np.vstack([archive, y]), ref) - hypervolume(archive, ref)
    assert delta == pytest.approx(max(expected, 0.0), abs=1e-12)
    if any(np.all(a >= np.asarray(y)) for a in archive):
        assert delta == 0.0


def test_contribution_hand_worked_and_dominated():
    assert hv_contribution(np.zeros((0, 2)), [0.5, 0.4], [0.0, 0.0]) == pytest.approx(0.2)
    assert hv_contribution([[1.0, 0.5]], [0.5, 1.0], [0.0, 0.0]) == pytest.approx(0.25)
    assert hv_contribution([[1.0, 1.0]], [0.5, 1.0], [0.0, 0.0]) == 0.0
    assert hv_contribution([[0.5, 1.0]], [0.5, 1.0], [0.0, 0.0]) == 0.0  # duplicate
    with pytest.raises(ValueError, match="shape"):
        hv_contribution([[1.0, 1.0]], [0.5, 1.0, 0.2], [0.0, 0.0])
    with pytest.raises(ValueError, match="finite"):
        hv_contribution([[1.0, 1.0]], [float("nan"), 1.0], [0.0, 0.0])


def test_gradient_2d_hand_worked():
    # Archive (1, 0.25); y = (0.5, 0.75): moving y_1 right adds height 0.75 - 0.25,
    # moving y_2 up adds width 0.5.
    np.testing.assert_allclose(hv_gradient([[1.0, 0.25]], [0.5, 0.75], [0, 0]), [0.5, 0.5])
    # Empty archive: the gradient of y_1*y_2 is (y_2, y_1).
    np.testing.assert_allclose(hv_gradient(np.zeros((0, 2)), [0.3, 0.6], [0, 0]), [0.6, 0.3])
    # Strictly dominated y: zero gradient.
    np.testing.assert_allclose(hv_gradient([[1.0, 1.0]], [0.5, 0.5], [0, 0]), [0.0, 0.0])
    # Below the reference in objective 1: improving it a little still adds nothing.
    np.testing.assert_allclose(hv_gradient(np.zeros((0, 2)), [-0.1, 0.6], [0, 0]), [0.0, 0.0])


def closed_form_2d(archive: np.ndarray, y: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """algorithm.md, Stage 1 step 4, written out literally."""
    g = np.zeros(2)
    for i, j in ((0, 1), (1, 0)):
        beyond = [a[j] for a in archive if a[i] > y[i]]
        g[i] = max(0.0, y[j] - max([ref[j], *beyond])) if y[i] >= ref[i] else 0.0
    return g


@PROPERTY
@given(points2, st.tuples(st.floats(0.0, 0.99), st.floats(0.0, 0.99)))
def test_gradient_2d_closed_form_and_finite_differences(pts, y):
    # On the grid of multiples of 1/8 and y off it, a step of 1e-4 crosses no breakpoint.
    archive = np.round(np.array(pts, dtype=np.float64).reshape(-1, 2) * 8) / 8
    y_arr = np.round(np.asarray(y) * 8) / 8 + 1 / 64
    ref = np.zeros(2)
    exact = hv_gradient(archive, y_arr, ref)
    np.testing.assert_allclose(exact, closed_form_2d(archive, y_arr, ref), atol=1e-12)
    np.testing.assert_allclose(exact, hv_gradient(archive, y_arr, ref, step=1e-4), atol=1e-6)


@PROPERTY
@given(points3, st.tuples(st.floats(0.0, 0.99), st.floats(0.0, 0.99), st.floats(0.0, 0.99)))
def test_gradient_3d_exact_matches_finite_differences(pts, y):
    archive = np.round(np.array(pts, dtype=np.float64).reshape(-1, 3) * 8) / 8
    y_arr = np.round(np.asarray(y) * 8) / 8 + 1 / 64
    ref = np.zeros(3)
    exact = hv_gradient(archive, y_arr, ref)
    np.testing.assert_allclose(exact, hv_gradient(archive, y_arr, ref, step=1e-4), atol=1e-6)


@PROPERTY
@given(points3, st.tuples(unit, unit, unit))
def test_gradient_3d_non_negative_and_zero_when_dominated(pts, y):
    archive = np.array(pts, dtype=np.float64).reshape(-1, 3)
    grad = hv_gradient(archive, y, np.zeros(3))
    assert grad.shape == (3,) and np.all(grad >= 0)
    if any(np.all(a > np.asarray(y)) for a in archive):
        np.testing.assert_array_equal(grad, 0.0)


def test_gradient_3d_hand_worked():
    y = np.array([0.3, 0.5, 0.7])
    # Empty archive: the gradient of the box volume y1*y2*y3 (product rule).
    expected = [0.5 * 0.7, 0.3 * 0.7, 0.3 * 0.5]
    np.testing.assert_allclose(hv_gradient(np.zeros((0, 3)), y, np.zeros(3)), expected)
    # a is beyond y in objectives 1 and 2, so it covers part of those two faces: the
    # (y2, y3) face [0,0.5]x[0,0.7] loses [0,0.5]x[0,0.25]; the (y1, y3) face
    # [0,0.3]x[0,0.7] loses [0,0.3]x[0,0.25]; a3 = 0.25 < y3, so the third face is whole.
    archive = np.array([[0.9, 1.0, 0.25]])
    expected = [0.5 * 0.7 - 0.5 * 0.25, 0.3 * 0.7 - 0.3 * 0.25, 0.3 * 0.5]
    np.testing.assert_allclose(hv_gradient(archive, y, np.zeros(3)), expected)
    with pytest.raises(ValueError, match="step"):
        hv_gradient(archive, y, np.zeros(3), step=0.0)
