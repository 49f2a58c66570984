"""Stage 1: hypervolume-guided dynamic scalarization (``algorithm.md`` Eqs. 5–6, step 4).

:func:`update` is the whole Stage 1 state machine as a pure function: the archive service
holds a :class:`Stage1State`, feeds it each validation outcome y_t and stores the new state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from paretopo.core.hypervolume import hv_contribution, hv_gradient, hypervolume
from paretopo.core.pareto import nondominated_mask

__all__ = [
    "ArchivePoint",
    "Stage1Info",
    "Stage1Settings",
    "Stage1State",
    "clip_simplex",
    "initial_state",
    "scalarize",
    "update",
]


class Stage1Settings(Protocol):
    """The Stage 1 knobs; ``paretopo.config.Stage1Config`` satisfies this protocol."""

    beta: float  # β ∈ [0, 1), smoothing of the gain (Eq. 5)
    tau: float  # τ > 0, temperature of ρ (Eq. 6)
    step_size: float  # α ∈ (0, 1], weight step
    weight_floor: float  # w_min ≥ 0, M·w_min ≤ 1
    amplification: float  # λ ≥ 0, advantage amplification (used by the estimator)
    reference_point: Sequence[float]  # z, length M


@dataclass(frozen=True)
class ArchivePoint:
    """A policy-level outcome vector in the Pareto archive and the step that produced it."""

    values: tuple[float, ...]
    step: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(float(v) for v in self.values))
        object.__setattr__(self, "step", int(self.step))


@dataclass(frozen=True)
class Stage1State:
    """Stage 1 state: weights w, archive P, smoothed gain G, signal ρ, last applied step."""

    weights: tuple[float, ...]
    archive: tuple[ArchivePoint, ...] = ()
    gain: float = 0.0
    rho: float = 0.0
    step: int = -1

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        object.__setattr__(
            self,
            "archive",
            tuple(p if isinstance(p, ArchivePoint) else ArchivePoint(*p) for p in self.archive),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able plain dict; ``Stage1State.from_dict(s.to_dict()) == s`` exactly.

        Examples
        --------
        >>> Stage1State((0.6, 0.4)).to_dict()
        {'weights': [0.6, 0.4], 'archive': [], 'gain': 0.0, 'rho': 0.0, 'step': -1}
        """
        return {
            "weights": list(self.weights),
            "archive": [{"values": list(p.values), "step": p.step} for p in self.archive],
            "gain": self.gain,
            "rho": self.rho,
            "step": self.step,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Stage1State:
        """Inverse of :meth:`to_dict`; raises ``ValueError`` naming a missing key."""
        try:
            return cls(
                weights=tuple(d["weights"]),
                archive=tuple(ArchivePoint(p["values"], p["step"]) for p in d["archive"]),
                gain=float(d["gain"]),
                rho=float(d["rho"]),
                step=int(d["step"]),
            )
        except KeyError as exc:
            raise ValueError(f"Stage1State dict is missing key {exc.args[0]!r}") from exc

    def archive_array(self) -> np.ndarray:
        """The archive values as an array of shape (K, M)."""
        return np.array([p.values for p in self.archive], dtype=np.float64).reshape(
            len(self.archive), len(self.weights)
        )


@dataclass(frozen=True)
class Stage1Info:
    """What one :func:`update` did, for metrics and logs."""

    delta_hv: float  # ΔHV_t
    gain: float  # G_t (Eq. 5)
    rho: float  # ρ_t (Eq. 6)
    gradient: tuple[float, ...]  # ĝ_t, the L1-normalised HV gradient
    weights: tuple[float, ...]  # w_{t+1}
    hypervolume: float  # HV of the new archive
    added: bool  # y_t entered the archive


def initial_state(weights: Sequence[float]) -> Stage1State:
    """The state before any step: given weights, empty archive, G = ρ = 0, step = −1.

    Examples
    --------
    >>> initial_state([0.6, 0.4])
    Stage1State(weights=(0.6, 0.4), archive=(), gain=0.0, rho=0.0, step=-1)
    """
    return Stage1State(weights=tuple(float(w) for w in weights))


def clip_simplex(weights: Sequence[float], floor: float) -> tuple[float, ...]:
    """Euclidean projection of ``weights`` onto ``{w : w_i >= floor, sum(w) = 1}``.

    With ``v = w − floor`` this is the projection onto the simplex of mass ``1 − M·floor``,
    done exactly by the sort-and-threshold algorithm (Duchi et al. 2008): the result is the
    closest point of the floored simplex, so weights already on it come back unchanged.

    Parameters
    ----------
    weights : sequence of M floats
    floor : float
        ``0 <= floor`` and ``M·floor <= 1``.

    Returns
    -------
    tuple of M floats

    Examples
    --------
    >>> tuple(round(w, 6) for w in clip_simplex([0.98, 0.02], 0.05))
    (0.95, 0.05)
    >>> clip_simplex([0.5, 0.5], 0.05)
    (0.5, 0.5)
    """
    w = np.asarray(weights, dtype=np.float64)
    m = w.size
    if w.ndim != 1 or m == 0 or not np.all(np.isfinite(w)):
        raise ValueError(f"weights must be a non-empty finite 1-D sequence, got {weights!r}")
    if not (floor >= 0 and m * floor <= 1 + 1e-12):
        raise ValueError(f"floor must satisfy 0 <= floor and M*floor <= 1, got {floor} (M={m})")
    mass = 1.0 - m * floor
    if mass <= 0:
        return (float(floor),) * m  # M·floor = 1: the set is a single point.
    v = w - floor
    u = np.sort(v)[::-1]
    cumulative = np.cumsum(u) - mass
    positive = u - cumulative / np.arange(1, m + 1) > 0
    k = int(np.nonzero(positive)[0][-1]) + 1
    theta = cumulative[k - 1] / k
    out = np.maximum(v - theta, 0.0) + floor
    return tuple(float(x) for x in out)


def scalarize(rewards: torch.Tensor | np.ndarray, weights: Sequence[float]) -> Any:
    """Weighted sum ``R = w · r`` over the last axis.

    Parameters
    ----------
    rewards : tensor or array of shape (..., M)
    weights : sequence of M floats

    Returns
    -------
    tensor (same dtype/device as a floating ``rewards``) or array, shape (...)

    Examples
    --------
    >>> scalarize(torch.tensor([[1.0, 0.0], [0.5, 1.0]]), (0.6, 0.4))
    tensor([0.6000, 0.7000])
    """
    if isinstance(rewards, torch.Tensor):
        r = rewards if rewards.is_floating_point() else rewards.to(torch.get_default_dtype())
        w = torch.as_tensor(weights, dtype=r.dtype, device=r.device)
    else:
        r, w = np.asarray(rewards, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or r.ndim == 0 or r.shape[-1] != w.shape[0]:
        raise ValueError(
            f"rewards (..., M) and weights (M,) disagree: {tuple(r.shape)} vs {tuple(w.shape)}"
        )
    return r @ w


def _check(state: Stage1State, y: Sequence[float], settings: Stage1Settings, step: int) -> None:
    m = len(state.weights)
    if len(y) != m or len(settings.reference_point) != m:
        raise ValueError(
            f"y has {len(y)} objectives, weights {m}, reference_point "
            f"{len(settings.reference_point)}: they must agree"
        )
    if not all(math.isfinite(v) for v in y):
        raise ValueError(f"y must be finite, got {list(y)}")
    if not (0 <= settings.beta < 1 and settings.tau > 0 and 0 < settings.step_size <= 1):
        raise ValueError("need 0 <= beta < 1, tau > 0 and 0 < step_size <= 1")
    if step <= state.step:
        raise ValueError(f"step {step} was already applied (last applied step {state.step})")


def update(
    state: Stage1State, y: Sequence[float], settings: Stage1Settings, *, step: int
) -> tuple[Stage1State, Stage1Info]:
    """Apply one Stage 1 step for the validation outcome ``y`` (pure; inputs untouched).

    1. ``ΔHV = HV(P ∪ {y}) − HV(P)``;
    2. ``G = β·G + (1 − β)·ΔHV`` (Eq. 5);
    3. ``ρ = tanh(G / τ)`` (Eq. 6);
    4. ``ĝ = ∇_y HV(P ∪ {y}) / ‖·‖₁`` (uniform when zero) and
       ``w ← clip_simplex((1 − α(1 − ρ))·w + α(1 − ρ)·ĝ, w_min)``;
    5. ``P ← nondominated(P ∪ {y})``, each point keeping the step that produced it (a ``y``
       equal to an archive point does not enter: the older point stays).

    Parameters
    ----------
    state : Stage1State
    y : sequence of M floats
        Mean validation objective vector of the policy after step ``step``.
    settings : Stage1Settings
    step : int
        Training step of ``y``; must exceed ``state.step`` so a replayed report is an error
        rather than a double update.

    Returns
    -------
    (Stage1State, Stage1Info)

    Raises
    ------
    ValueError
        Wrong length or non-finite ``y``, bad settings, or a step already applied.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> s = SimpleNamespace(beta=0.9, tau=0.01, step_size=0.2, weight_floor=0.05,
    ...                     amplification=1.0, reference_point=(0.0, 0.0))
    >>> new, info = update(initial_state([0.6, 0.4]), [0.5, 0.2], s, step=0)
    >>> round(info.delta_hv, 6), round(info.gain, 6), info.added
    (0.1, 0.01, True)
    """
    _check(state, y, settings, step)
    y_arr = np.asarray(y, dtype=np.float64)
    ref = np.asarray(settings.reference_point, dtype=np.float64)
    archive = state.archive_array()
    delta = hv_contribution(archive, y_arr, ref)
    gain = settings.beta * state.gain + (1.0 - settings.beta) * delta
    rho = math.tanh(gain / settings.tau)
    grad = hv_gradient(archive, y_arr, ref)
    total = float(grad.sum())
    g_hat = grad / total if total > 0 else np.full(grad.size, 1.0 / grad.size)
    move = settings.step_size * (1.0 - rho)
    weights = clip_simplex(
        (1.0 - move) * np.asarray(state.weights) + move * g_hat, settings.weight_floor
    )
    keep = nondominated_mask(np.vstack([archive, y_arr]))
    candidates = (*state.archive, ArchivePoint(tuple(y_arr.tolist()), step))
    new_archive = tuple(p for p, k in zip(candidates, keep, strict=True) if k)
    new_state = Stage1State(weights=weights, archive=new_archive, gain=gain, rho=rho, step=step)
    info = Stage1Info(
        delta_hv=delta,
        gain=gain,
        rho=rho,
        gradient=tuple(float(g) for g in g_hat),
        weights=weights,
        hypervolume=hypervolume(new_state.archive_array(), ref),
        added=bool(keep[-1]),
    )
    return new_state, info
