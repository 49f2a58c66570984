"""Dominance and non-dominated sorting, against moocore and the plain reference."""

from __future__ import annotations

import moocore
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from paretopo.core.pareto import (
    dominates,
    nondominated,
    nondominated_mask,
    pareto_ranks,
    pareto_ranks_reference,
)

PROPERTY = settings(deadline=None, print_blob=True, max_examples=60)
SEEDS = range(6)


def random_sets(rng: np.random.Generator, count: int, g: int, m: int, kind: str) -> np.ndarray:
    """``count`` groups of ``g`` points with ties and duplicates according to ``kind``."""
    if kind == "binary":  # r_acc-like {0, 1} in every objective
        return rng.integers(0, 2, size=(count, g, m)).astype(np.float64)
    if kind == "discrete":  # r_acc in {0, 1} and a few tool-efficiency levels
        acc = rng.integers(0, 2, size=(count, g, 1))
        rest = rng.integers(0, 4, size=(count, g, m - 1)) / 3
        return np.concatenate([acc, rest], axis=-1).astype(np.float64)
    points = rng.random((count, g, m))
    dup = rng.random((count, g)) < 0.2  # copy some points over their neighbour
    points[:, 1:][dup[:, 1:]] = points[:, :-1][dup[:, 1:]]
    return points


def test_dominates_examples():
    assert dominates([1, 1], [1, 0])
    assert dominates(np.array([2.0, 3.0, 1.0]), torch.tensor([2.0, 3.0, 0.5]))
    assert not dominates([1, 1], [1, 1])
    assert not dominates([1, 0], [0, 1])
    assert not dominates([0, 0], [1, 0])
    with pytest.raises(ValueError, match="same length"):
        dominates([1, 2], [1, 2, 3])


def test_pareto_ranks_hand_worked():
    # (1,1) dominates all; (1,0) and (0,1) tie on front 2; two (0,0) share front 3.
    pts = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
    assert pareto_ranks(pts).tolist() == [3, 2, 1, 2, 3]
    assert pareto_ranks(pts).dtype == torch.int64


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", ["binary", "discrete", "continuous"])
@pytest.mark.parametrize("m", [2, 3])
def test_pareto_ranks_match_moocore(seed, kind, m):
    print(f"seed={seed} kind={kind} m={m}")
    rng = np.random.default_rng(seed)
    g = int(rng.integers(1, 17))
    sets = random_sets(rng, 200, g, m, kind)
    ours = pareto_ranks(torch.from_numpy(sets)).numpy()
    for i, points in enumerate(sets):
        # moocore ranks from 0.
        expected = moocore.pareto_rank(points, maximise=True) + 1
        np.testing.assert_array_equal(ours[i], expected, err_msg=f"group {i}: {points}")


@pytest.mark.parametrize("seed", SEEDS)
def test_pareto_ranks_vectorised_equals_reference(seed):
    print(f"seed={seed}")
    rng = np.random.default_rng(100 + seed)
    for g, m, kind in [(1, 2, "binary"), (5, 3, "discrete"), (16, 2, "continuous"), (9, 4, "x")]:
        pts = torch.from_numpy(random_sets(rng, 12, g, m, kind)).reshape(3, 4, g, m)
        assert torch.equal(pareto_ranks(pts), pareto_ranks_reference(pts))


@pytest.mark.parametrize("g", [52, 53, 80])
def test_large_groups_bitmask_limit_and_counting_path(g):
    # G <= 52 peels with bit masks, larger groups with dominator counts: both vs moocore.
    rng = np.random.default_rng(g)
    for kind in ("discrete", "continuous"):
        sets = random_sets(rng, 3, g, 2, kind)
        ours = pareto_ranks(torch.from_numpy(sets)).numpy()
        for i, points in enumerate(sets):
            np.testing.assert_array_equal(ours[i], moocore.pareto_rank(points, maximise=True) + 1)


def test_pareto_ranks_edge_shapes_and_errors():
    assert pareto_ranks(torch.zeros(3, 0, 2)).shape == (3, 0)
    assert pareto_ranks(torch.tensor([[1, 0], [0, 0]])).tolist() == [1, 2]  # integer input
    with pytest.raises(ValueError, match="finite"):
        pareto_ranks(torch.tensor([[float("nan"), 0.0]]))
    with pytest.raises(ValueError, match="shape"):
        pareto_ranks(torch.tensor([1.0, 2.0]))


def test_pareto_ranks_do_not_mutate():
    pts = torch.rand(4, 6, 2)
    copy = pts.clone()
    pareto_ranks(pts)
    assert torch.equal(pts, copy)


@PROPERTY
@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=12),
    st.floats(0.01, 100),
    st.integers(0, 1),
)
def test_ranks_invariant_to_rescaling_one_objective(rows, factor, axis):
    pts = torch.tensor(rows, dtype=torch.float64)
    scaled = pts.clone()
    scaled[:, axis] *= factor
    assert torch.equal(pareto_ranks(pts), pareto_ranks(scaled))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", ["binary", "discrete", "continuous"])
def test_nondominated_matches_moocore(seed, kind):
    print(f"seed={seed} kind={kind}")
    rng = np.random.default_rng(200 + seed)
    for points in random_sets(rng, 30, int(rng.integers(1, 300)), 3, kind):
        mask = nondominated_mask(points)
        front = nondominated(points)
        expected = moocore.filter_dominated(points, maximise=True, keep_weakly=False)
        np.testing.assert_array_equal(front, expected)
        assert front.shape[0] == len({tuple(p) for p in front}), "duplicates kept once"
        for i in np.flatnonzero(mask):
            assert not any(np.array_equal(points[j], points[i]) for j in range(i)), "first kept"
        # Brute force: nothing dominates a front point; every point is weakly covered.
        for q in front:
            assert not any(dominates(p, q) for p in points)
        for p in points:
            assert any(np.all(q >= p) for q in front)


def test_nondominated_keeps_first_duplicate_and_handles_empty():
    pts = np.array([[0.5, 0.5], [1.0, 0.0], [0.5, 0.5]])
    assert nondominated_mask(pts).tolist() == [True, True, False]
    assert nondominated(np.zeros((0, 2))).shape == (0, 2)
    assert nondominated_mask(np.array([[0.0, 0.0]]), maximise=False).tolist() == [True]
