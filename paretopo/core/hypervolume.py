"""Hypervolume, hypervolume contribution and its gradient (Stage 1, steps 1 and 4).

The hypervolume itself is moocore's exact dimension-sweep algorithm (Fonseca, Paquete,
López-Ibáñez 2006), as ``algorithm.md`` asks. The contribution and the gradient are built on
it; :func:`hv_gradient` is exact in every dimension (slices of lower-dimensional
contributions), with forward differences available as a cross-check.
"""

from __future__ import annotations

from collections.abc import Sequence

import moocore
import numpy as np

__all__ = ["hv_contribution", "hv_gradient", "hypervolume"]

ArrayLike = Sequence[Sequence[float]] | np.ndarray


def _points(points: ArrayLike, m: int | None = None) -> np.ndarray:
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[0] == 0 and m is not None:
        arr = arr.reshape(0, m)
    if arr.ndim != 2:
        raise ValueError(f"points must have shape (N, M), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("points must be finite")
    return arr


def _vector(x: Sequence[float] | np.ndarray, name: str, m: int) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.shape != (m,):
        raise ValueError(f"{name} must have shape ({m},), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {arr.tolist()}")
    return arr


def hypervolume(
    points: ArrayLike,
    /,
    ref: Sequence[float] | np.ndarray,
    *,
    maximise: bool | Sequence[bool] = True,
) -> float:
    """Hypervolume dominated by ``points`` and bounded by the reference point ``ref``.

    Parameters
    ----------
    points : array of shape (N, M)
        N may be 0.
    ref : array of shape (M,)
        Reference point z.
    maximise : bool or sequence of M bools
        Direction of the objectives (default: all maximised).

    Returns
    -------
    float
        0.0 for an empty set. Points that do not strictly beat ``ref`` in every objective
        bound no volume and contribute nothing.

    Examples
    --------
    >>> hypervolume([[1.0, 0.5], [0.5, 1.0]], ref=[0.0, 0.0])
    0.75
    >>> hypervolume(np.zeros((0, 2)), ref=[0.0, 0.0])
    0.0
    """
    ref_arr = np.asarray(ref, dtype=np.float64)
    pts = _points(points, ref_arr.size)
    ref_arr = _vector(ref_arr, "ref", pts.shape[1])
    sign = np.where(np.broadcast_to(np.asarray(maximise, dtype=bool), ref_arr.shape), 1.0, -1.0)
    inside = np.all(sign * (pts - ref_arr) > 0, axis=1)
    if not inside.any():
        return 0.0
    return float(moocore.hypervolume(pts[inside], ref=ref_arr, maximise=maximise))


def hv_contribution(
    archive: ArrayLike, y: Sequence[float] | np.ndarray, ref: Sequence[float] | np.ndarray
) -> float:
    """Hypervolume gained by adding ``y`` to ``archive`` (Stage 1, step 1; maximisation).

    ``ΔHV = HV(P ∪ {y}) − HV(P)``.

    Parameters
    ----------
    archive : array of shape (K, M)
        The archive P; K may be 0.
    y : array of shape (M,)
    ref : array of shape (M,)

    Returns
    -------
    float
        ``>= 0``; exactly 0 when some archive point weakly dominates ``y`` or ``y`` does not
        strictly beat ``ref``.

    Examples
    --------
    >>> hv_contribution([[1.0, 0.5]], [0.5, 1.0], ref=[0.0, 0.0])
    0.25
    >>> hv_contribution([[1.0, 1.0]], [0.5, 1.0], ref=[0.0, 0.0])
    0.0
    """
    ref_arr = np.asarray(ref, dtype=np.float64)
    pts = _points(archive, ref_arr.size)
    m = pts.shape[1]
    y_arr, ref_arr = _vector(y, "y", m), _vector(ref_arr, "ref", m)
    if not np.all(y_arr > ref_arr) or np.any(np.all(pts >= y_arr, axis=1)):
        return 0.0
    with_y = np.vstack([pts, y_arr])
    # Rounding in the two sums can make the difference a hair negative; it is >= 0 exactly.
    return max(0.0, hypervolume(with_y, ref_arr) - hypervolume(pts, ref_arr))


def _slice_gradient(pts: np.ndarray, y: np.ndarray, ref: np.ndarray) -> np.ndarray:
    grad = np.zeros(y.size)
    for i in range(y.size):
        # Moving y_i up by dt adds the slab [y_i, y_i + dt] x (y's box face minus what the
        # archive points beyond y_i already cover): dt times the (M-1)-D contribution of
        # y_{-i} to those points. Below the reference in objective i the slab lies outside
        # the reference box: no gain.
        if y[i] < ref[i]:
            continue
        rest = np.arange(y.size) != i
        beyond = pts[pts[:, i] > y[i]][:, rest]
        grad[i] = hv_contribution(beyond, y[rest], ref[rest])
    return grad


def hv_gradient(
    archive: ArrayLike,
    y: Sequence[float] | np.ndarray,
    ref: Sequence[float] | np.ndarray,
    *,
    step: float | None = None,
) -> np.ndarray:
    """Gradient of ``HV(P ∪ {y})`` with respect to ``y`` (Stage 1, step 4; maximisation).

    The hypervolume is piecewise linear in each coordinate of ``y``; this returns the
    one-sided (increasing ``y_i``) derivative, >= 0: the hypervolume gained per unit of
    improvement in each objective. It is exact in every dimension: ``g_i`` is the
    (M−1)-D hypervolume contribution of ``y`` without objective i to the archive points
    beyond ``y_i`` (without objective i). In 2-D this is the closed form of ``algorithm.md``:
    ``g_1 = y_2 − max({a_2 : a_1 > y_1} ∪ {z_2})``, floored at 0, likewise ``g_2``.

    Parameters
    ----------
    archive : array of shape (K, M)
        The archive P; K may be 0.
    y : array of shape (M,)
    ref : array of shape (M,)
    step : float, optional
        When given, use forward differences with this step instead of the exact slices
        (kept to cross-check the exact form).

    Returns
    -------
    np.ndarray, shape (M,)
        Non-negative; all zeros when ``y`` is strictly dominated.

    Examples
    --------
    >>> hv_gradient([[1.0, 0.25]], [0.5, 0.75], ref=[0.0, 0.0])
    array([0.5, 0.5])
    >>> hv_gradient(np.zeros((0, 3)), [0.5, 0.5, 0.5], ref=[0.0, 0.0, 0.0])
    array([0.25, 0.25, 0.25])
    """
    ref_arr = np.asarray(ref, dtype=np.float64)
    pts = _points(archive, ref_arr.size)
    m = pts.shape[1]
    y_arr, ref_arr = _vector(y, "y", m), _vector(ref_arr, "ref", m)
    if m < 2:
        raise ValueError(f"hv_gradient needs M >= 2 objectives, got {m}")
    if step is None:
        return _slice_gradient(pts, y_arr, ref_arr)
    if not step > 0:
        raise ValueError(f"step must be > 0, got {step}")
    base = hypervolume(np.vstack([pts, y_arr]), ref_arr)
    grad = np.zeros(m)
    for i in range(m):
        moved = y_arr.copy()
        moved[i] += step
        grad[i] = (hypervolume(np.vstack([pts, moved]), ref_arr) - base) / step
    return np.maximum(grad, 0.0)
