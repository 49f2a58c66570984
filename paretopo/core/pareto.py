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

    Built one objective at a time: (..., G, G) comparisons per objective are ~4x faster than
    one (..., G, G, M) comparison followed by a reduction over M.
    """
    weakly_better = strictly_better = None
    for k in range(points.shape[-1]):
        col = points[..., k]
        ge = col.unsqueeze(-1) >= col.unsqueeze(-2)
        gt = col.unsqueeze(-1) > col.unsqueeze(-2)
        weakly_better = ge if weakly_better is None else weakly_better & ge
        strictly_better = gt if strictly_better is None else strictly_better | gt
    return weakly_better & strictly_better


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
    over groups.

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
    batch_shape, n = points.shape[:-1], points.shape[-2]
    if points.numel() == 0:
        return torch.zeros(batch_shape, dtype=torch.int64, device=points.device)
    dom = _domination_matrix(points)
    # Fast non-dominated sort: count the dominators of every point, take the points with none
    # as the next front, subtract the front's domination. One batched matmul per rank level.
    dom_f = dom.reshape(-1, n, n).to(torch.float32)
    counts = dom_f.sum(-2)
    ranks = torch.zeros(counts.shape, dtype=torch.int64, device=points.device)
    remaining = torch.ones(counts.shape, dtype=torch.bool, device=points.device)
    for level in range(1, n + 1):
        front = remaining & (counts == 0)
        ranks = torch.where(front, level, ranks)
        remaining = remaining & ~front
        if not bool(remaining.any()):
            break
        counts = counts - torch.bmm(front.to(torch.float32).unsqueeze(-2), dom_f).squeeze(-2)
    ranks = ranks.reshape(batch_shape)
    return ranks


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
