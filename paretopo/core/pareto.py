"""Pareto dominance, non-dominated sorting and non-dominated filtering (maximisation).

Stage 2 (``algorithm.md``, "Stage 2", step 1) sorts the G trajectories of every group into
Pareto ranks; :func:`pareto_ranks` does it for a whole ``(B, G, M)`` batch in one vectorised
call. :func:`pareto_ranks_reference` is the plain version it is tested against, and moocore
is the ground truth both are tested against. :func:`nondominated` filters large point sets
(the Stage 1 archive) through moocore.
"""

from __future__ import annotations

from collections.abc import Sequence

import moocore
import numpy as np
import torch

__all__ = [
    "dominates",
    "nondominated",
    "nondominated_mask",
    "pareto_ranks",
    "pareto_ranks_reference",
]


def _as_vector(x: Sequence[float] | np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


def dominates(
    a: Sequence[float] | np.ndarray | torch.Tensor,
    b: Sequence[float] | np.ndarray | torch.Tensor,
) -> bool:
    """Whether ``a`` Pareto-dominates ``b`` under maximisation.

    Parameters
    ----------
    a, b : sequence, array or tensor of shape (M,)
        Objective vectors, every objective maximised.

    Returns
    -------
    bool
        ``True`` when ``a >= b`` in every objective and ``a > b`` in at least one.
        Equal vectors do not dominate each other.

    Examples
    --------
    >>> dominates([1, 1], [1, 0])
    True
    >>> dominates([1, 0], [0, 1]), dominates([1, 1], [1, 1])
    (False, False)
    """
    av, bv = _as_vector(a, "a"), _as_vector(b, "b")
    if av.shape != bv.shape:
        raise ValueError(f"a and b must have the same length, got {av.size} and {bv.size}")
    return bool(np.all(av >= bv) and np.any(av > bv))


def _domination_matrix(points: torch.Tensor) -> torch.Tensor:
    """``dom[..., i, j]``: point i dominates point j; shape (..., G, G).

    i dominates j when i >= j everywhere and not j >= i everywhere (that would make them
    equal). Built one objective at a time: (..., G, G) comparisons per objective are several
    times faster than one (..., G, G, M) comparison followed by a reduction over M.
    """
    weakly_better = None
    for k in range(points.shape[-1]):
        col = points[..., k]
        ge = col.unsqueeze(-1) >= col.unsqueeze(-2)
        weakly_better = ge if weakly_better is None else weakly_better & ge
    return weakly_better & ~weakly_better.transpose(-1, -2)


# Up to this group size a group's dominators fit the exact integers of a float64 bit mask.
_BITMASK_MAX_GROUP = 52


def pareto_ranks(points: torch.Tensor) -> torch.Tensor:
    """Non-dominated sorting of every group of a batch at once (maximisation).

    Rank 1 holds the points no other point of their group dominates; rank k those dominated
    only by points of ranks < k ("Stage 2", step 1). Equal vectors share a rank.

    Parameters
    ----------
    points : torch.Tensor, shape (..., G, M)
        Objective vectors; groups are the G-axis, all leading dims are batch dims.

    Returns
    -------
    torch.Tensor, int64, shape (..., G)
        Ranks starting at 1.

    Notes
    -----
    The (..., G, G) domination matrix is built once (O(M·G²) per group); fronts are then
    peeled with tensor ops, one iteration per rank level (at most G), never a Python loop
    over groups. For G <= 52 each point's dominators are a bit mask, so a peeling step costs
    O(G) per group; larger groups count dominators with a batched matmul instead.

    Examples
    --------
    >>> pareto_ranks(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]]))
    tensor([1, 1, 2, 2])
    """
    points = torch.as_tensor(points)
    if points.ndim < 2 or points.shape[-1] == 0:
        raise ValueError(f"points must have shape (..., G, M >= 1), got {tuple(points.shape)}")
    if points.is_floating_point() and not bool(torch.isfinite(points).all()):
        raise ValueError("points must be finite")
    if points.numel() == 0:
        return torch.zeros(points.shape[:-1], dtype=torch.int64, device=points.device)
    dom = _domination_matrix(points)
    if points.shape[-2] <= _BITMASK_MAX_GROUP:
        return _peel_bitmask(dom)
    return _peel_counts(dom)


def _peel_bitmask(dom: torch.Tensor) -> torch.Tensor:
    n = dom.shape[-1]
    bits = torch.ones(n, dtype=torch.int64, device=dom.device) << torch.arange(n, device=dom.device)
    # dominators[..., j]: bit i set when point i dominates point j (a float64 matmul is the
    # fastest exact way to pack the bits; every partial sum is an integer below 2^52).
    dominators = torch.matmul(bits.to(torch.float64), dom.to(torch.float64)).to(torch.int64)
    remaining = torch.full(dom.shape[:-2], int(bits.sum()), dtype=torch.int64, device=dom.device)
    ranks = torch.zeros(dom.shape[:-1], dtype=torch.int64, device=dom.device)
    for level in range(1, n + 1):
        # On this front: not yet ranked, and no unranked point dominates it.
        front = ((dominators & remaining.unsqueeze(-1)) == 0) & (ranks == 0)
        ranks = torch.where(front, level, ranks)
        remaining = remaining - (front.to(torch.int64) * bits).sum(-1)
        if not bool(remaining.any()):
            break
    return ranks


def _peel_counts(dom: torch.Tensor) -> torch.Tensor:
    batch_shape, n = dom.shape[:-1], dom.shape[-1]
    # Fast non-dominated sort: count the dominators of every point, take the points with none
    # as the next front, subtract the front's domination. One batched matmul per rank level.
    dom_f = dom.reshape(-1, n, n).to(torch.float32)
    counts = dom_f.sum(-2)
    ranks = torch.zeros(counts.shape, dtype=torch.int64, device=dom.device)
    remaining = torch.ones(counts.shape, dtype=torch.bool, device=dom.device)
    for level in range(1, n + 1):
        front = remaining & (counts == 0)
        ranks = torch.where(front, level, ranks)
        remaining = remaining & ~front
        if not bool(remaining.any()):
            break
        counts = counts - torch.bmm(front.to(torch.float32).unsqueeze(-2), dom_f).squeeze(-2)
    return ranks.reshape(batch_shape)


def pareto_ranks_reference(points: torch.Tensor) -> torch.Tensor:
    """Plain-Python non-dominated sorting; the obviously-correct twin of :func:`pareto_ranks`.

    Parameters
    ----------
    points : torch.Tensor, shape (..., G, M)

    Returns
    -------
    torch.Tensor, int64, shape (..., G)

    Examples
    --------
    >>> pareto_ranks_reference(torch.tensor([[2.0, 2.0], [1.0, 1.0], [2.0, 2.0]]))
    tensor([1, 2, 1])
    """
    points = torch.as_tensor(points)
    groups = points.reshape(-1, points.shape[-2], points.shape[-1]).tolist()
    out = []
    for group in groups:
        ranks = [0] * len(group)
        unranked = set(range(len(group)))
        level = 0
        while unranked:
            level += 1
            front = [
                i for i in unranked if not any(dominates(group[j], group[i]) for j in unranked)
            ]
            for i in front:
                ranks[i] = level
            unranked -= set(front)
        out.append(ranks)
    return torch.tensor(out, dtype=torch.int64).reshape(points.shape[:-1])


def _as_matrix(points: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"points must have shape (N, M), got {arr.shape}")
    return arr


def nondominated_mask(points: np.ndarray, *, maximise: bool = True) -> np.ndarray:
    """Mask of the non-dominated points, exact duplicates kept once (first occurrence).

    Parameters
    ----------
    points : array of shape (N, M)
    maximise : bool
        Direction of every objective.

    Returns
    -------
    np.ndarray of bool, shape (N,)

    Examples
    --------
    >>> nondominated_mask(np.array([[1.0, 0.0], [0.5, 0.5], [0.5, 0.5], [0.2, 0.2]]))
    array([ True,  True, False, False])
    """
    arr = _as_matrix(points)
    if arr.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    # keep_weakly=False drops all but the first of identical points.
    return np.asarray(moocore.is_nondominated(arr, maximise=maximise, keep_weakly=False))


def nondominated(points: np.ndarray, *, maximise: bool = True) -> np.ndarray:
    """The non-dominated subset of ``points`` in input order, duplicates kept once.

    Parameters
    ----------
    points : array of shape (N, M)
    maximise : bool

    Returns
    -------
    np.ndarray, shape (K, M), K <= N

    Examples
    --------
    >>> nondominated(np.array([[0.0, 1.0], [0.0, 0.5], [1.0, 0.0]]))
    array([[0., 1.],
           [1., 0.]])
    """
    arr = _as_matrix(points)
    return arr[nondominated_mask(arr, maximise=maximise)].copy()
