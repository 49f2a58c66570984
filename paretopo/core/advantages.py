"""Advantage estimators: Stage 1 (step 6), Stage 2 (Eqs. 7–9) and the baselines.

Every estimator takes the intact per-objective reward matrix ``rewards: (B, G, M)`` (B
groups of G trajectories, M objectives; objective 0 is accuracy, objective 1 tool
efficiency) and returns advantages ``(B, G)``. Call sites dispatch by name through
:data:`ADVANTAGE_ESTIMATORS` / :func:`compute_advantages`; :func:`estimator_for` maps an
algorithm (``algorithm.md``, "Baselines") and stage to an estimator name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from paretopo.core.pareto import pareto_ranks, pareto_ranks_reference
from paretopo.core.scalarization import scalarize

__all__ = [
    "ADVANTAGE_ESTIMATORS",
    "ALGORITHMS",
    "AdvantageInputs",
    "compute_advantages",
    "estimator_for",
    "fixed_weight",
    "grpo",
    "mo_grpo",
    "nonzero_groups",
    "otc_grpo",
    "pareto_rank_advantages",
    "pareto_rank_advantages_reference",
    "stage1_advantages",
]

STD_EPS = 1e-6


def _float(rewards: torch.Tensor) -> torch.Tensor:
    rewards = torch.as_tensor(rewards)
    if rewards.ndim != 3:
        raise ValueError(f"rewards must have shape (B, G, M), got {tuple(rewards.shape)}")
    return rewards if rewards.is_floating_point() else rewards.to(torch.get_default_dtype())


def _group_normalise(scores: torch.Tensor) -> torch.Tensor:
    """``(R − mean_G R) / (std_G R + 1e-6)`` over the last axis; (B, G) -> (B, G).

    Choice: the population std (defined for G = 1). A group whose scores are all equal gets
    exact zeros, not the rounding noise of ``R − mean`` divided by 1e-6, so dynamic sampling
    can drop it.
    """
    centred = scores - scores.mean(-1, keepdim=True)
    normalised = centred / (scores.std(-1, unbiased=False, keepdim=True) + STD_EPS)
    constant = (scores == scores[..., :1]).all(-1, keepdim=True)
    return torch.where(constant, torch.zeros_like(normalised), normalised)


def grpo(rewards: torch.Tensor) -> torch.Tensor:
    """GRPO on accuracy: ``A = (r_acc − mean_G) / (std_G + 1e-6)``; (B, G, M) -> (B, G).

    Examples
    --------
    >>> grpo(torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]))
    tensor([[ 1.0000, -1.0000]])
    """
    return _group_normalise(_float(rewards)[..., 0])


def otc_grpo(rewards: torch.Tensor) -> torch.Tensor:
    """OTC-GRPO: GRPO on ``R = r_tool · r_acc`` (objectives 1 and 0); (B, G, M) -> (B, G).

    Examples
    --------
    >>> otc_grpo(torch.tensor([[[1.0, 1.0], [1.0, 0.5], [0.0, 1.0]]])).round(decimals=4)
    tensor([[ 1.2247,  0.0000, -1.2247]])
    """
    r = _float(rewards)
    return _group_normalise(r[..., 1] * r[..., 0])


def mo_grpo(rewards: torch.Tensor) -> torch.Tensor:
    """MO-GRPO: every objective normalised within the group, then summed; (B,G,M) -> (B,G).

    Examples
    --------
    >>> mo_grpo(torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]))
    tensor([[0., 0.]])
    """
    r = _float(rewards)
    return _group_normalise(r.transpose(-1, -2)).sum(-2)


def fixed_weight(rewards: torch.Tensor, weights: Sequence[float]) -> torch.Tensor:
    """GRPO on the scalarised reward ``R = w · r``; (B, G, M), (M,) -> (B, G).

    Examples
    --------
    >>> fixed_weight(torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]), (0.6, 0.4))
    tensor([[ 1.0000, -1.0000]])
    """
    return _group_normalise(scalarize(_float(rewards), weights))


def stage1_advantages(
    rewards: torch.Tensor, weights: Sequence[float], rho: float, *, amplification: float = 1.0
) -> torch.Tensor:
    """Stage 1 advantage (step 6): ``(1 + λ·ρ) · GRPO(w · r)``; (B, G, M) -> (B, G).

    The amplification multiplies the normalised advantage; inside the normalisation it
    would cancel.

    Examples
    --------
    >>> stage1_advantages(torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]), (0.6, 0.4), 0.5)
    tensor([[ 1.5000, -1.5000]])
    """
    return (1.0 + amplification * rho) * fixed_weight(rewards, weights)


#: Relative width below which the scores of one rank count as equal (Eq. 8's "all equal"):
#: w·r of equal outcomes can differ in the last bits after an affine change of the rewards.
TIE_RTOL = 1e-6


def tie_tolerance(lo, hi):
    """Scores of one rank within this distance of each other are a tie (floats or tensors)."""
    if isinstance(lo, torch.Tensor):
        return TIE_RTOL * torch.maximum(lo.abs(), hi.abs()).clamp(min=1.0)
    return TIE_RTOL * max(abs(lo), abs(hi), 1.0)


def pareto_rank_advantages(
    rewards: torch.Tensor, weights: Sequence[float], eps: float = 0.5
) -> torch.Tensor:
    """Stage 2 Pareto-ranking advantages (Eqs. 7–9), centred; (B, G, M), (M,) -> (B, G).

    Ranks k by non-dominated sorting of each group, K the group's number of ranks;
    ``b_k = (K − k)/(K − 1)`` (Eq. 7, 0 when K = 1); ``s_i`` the min-max position of
    ``w·r_i`` within its rank (Eq. 8, 0 when the rank's scores are all equal);
    ``Â_i = b_k + ε·s_i / max(K − 1, 1)`` (Eq. 9); ``A = Â − mean_G Â``.

    Examples
    --------
    >>> r = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]])
    >>> pareto_rank_advantages(r, (0.6, 0.4))
    tensor([[ 0.6667,  0.1667, -0.8333]])
    """
    if not 0 <= eps < 1:
        raise ValueError(f"eps must be in [0, 1), got {eps}")
    r = _float(rewards)
    ranks = pareto_ranks(r)
    n_ranks = ranks.max(-1, keepdim=True).values
    spread = (n_ranks - 1).clamp(min=1).to(r.dtype)
    base = (n_ranks - ranks).to(r.dtype) / spread  # Eq. 7; K = 1 gives 0 / 1.
    score = scalarize(r, weights)
    # Per-rank min and max of w·r, indexed by rank (index 0 unused), gathered back.
    shape = (*ranks.shape[:-1], ranks.shape[-1] + 1)
    lo = torch.full(shape, torch.inf, dtype=r.dtype).scatter_reduce(-1, ranks, score, "amin")
    hi = torch.full(shape, -torch.inf, dtype=r.dtype).scatter_reduce(-1, ranks, score, "amax")
    lo, hi = lo.gather(-1, ranks), hi.gather(-1, ranks)
    width = hi - lo
    spread_out = width > tie_tolerance(lo, hi)
    within = torch.where(spread_out, (score - lo) / torch.where(spread_out, width, 1.0), 0.0)
    refined = base + eps * within / spread  # Eq. 9
    return refined - refined.mean(-1, keepdim=True)


def pareto_rank_advantages_reference(
    rewards: torch.Tensor, weights: Sequence[float], eps: float = 0.5
) -> torch.Tensor:
    """Loop-per-group twin of :func:`pareto_rank_advantages`, for the equivalence test."""
    r = _float(rewards)
    out = torch.zeros(r.shape[:2], dtype=r.dtype)
    for b in range(r.shape[0]):
        ranks = pareto_ranks_reference(r[b]).tolist()
        scores = [sum(w * v for w, v in zip(weights, row, strict=True)) for row in r[b].tolist()]
        k_max = max(ranks)
        refined = []
        for i, k in enumerate(ranks):
            front = [scores[j] for j in range(len(ranks)) if ranks[j] == k]
            lo, hi = min(front), max(front)
            s = (scores[i] - lo) / (hi - lo) if hi - lo > tie_tolerance(lo, hi) else 0.0
            base = (k_max - k) / (k_max - 1) if k_max > 1 else 0.0
            refined.append(base + eps * s / max(k_max - 1, 1))
        mean = sum(refined) / len(refined)
        out[b] = torch.tensor([a - mean for a in refined], dtype=r.dtype)
    return out


@dataclass(frozen=True)
class AdvantageInputs:
    """The knobs every estimator may read; each estimator uses the ones it needs.

    ``weights`` (M,) are the current scalarisation weights (``w_0`` for ``fixed_weight``);
    ``rho`` and ``amplification`` drive Stage 1; ``pareto_eps`` is ε of Eq. 9.
    """

    weights: tuple[float, ...] | None = None
    rho: float = 0.0
    amplification: float = 1.0
    pareto_eps: float = 0.5

    def require_weights(self, estimator: str) -> tuple[float, ...]:
        if self.weights is None:
            raise ValueError(f"advantage estimator {estimator!r} needs AdvantageInputs.weights")
        return tuple(self.weights)


Estimator = Callable[[torch.Tensor, AdvantageInputs], torch.Tensor]

ADVANTAGE_ESTIMATORS: dict[str, Estimator] = {
    "grpo": lambda r, a: grpo(r),
    "otc_grpo": lambda r, a: otc_grpo(r),
    "mo_grpo": lambda r, a: mo_grpo(r),
    "fixed_weight": lambda r, a: fixed_weight(r, a.require_weights("fixed_weight")),
    "stage1": lambda r, a: stage1_advantages(
        r, a.require_weights("stage1"), a.rho, amplification=a.amplification
    ),
    "pareto_rank": lambda r, a: pareto_rank_advantages(
        r, a.require_weights("pareto_rank"), a.pareto_eps
    ),
    # GRPO on w·r with the current weights: Stage 2 of the no_pareto_ranking ablation.
    "scalar_grpo": lambda r, a: fixed_weight(r, a.require_weights("scalar_grpo")),
}


def compute_advantages(name: str, rewards: torch.Tensor, inputs: AdvantageInputs) -> torch.Tensor:
    """Advantages ``(B, G)`` of ``rewards: (B, G, M)`` by the estimator registered as ``name``.

    Examples
    --------
    >>> r = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    >>> compute_advantages("grpo", r, AdvantageInputs())
    tensor([[ 1.0000, -1.0000]])
    """
    try:
        estimator = ADVANTAGE_ESTIMATORS[name]
    except KeyError:
        known = ", ".join(sorted(ADVANTAGE_ESTIMATORS))
        raise ValueError(f"unknown advantage estimator {name!r}; known: {known}") from None
    return estimator(rewards, inputs)


ALGORITHMS = (
    "paretopo",
    "no_stage1",
    "no_stage2",
    "no_dynamic_weighting",
    "no_pareto_ranking",
    "grpo",
    "otc_grpo",
    "mo_grpo",
    "fixed_weight",
)

# algorithm -> (Stage 1 estimator, Stage 2 estimator); "Baselines" in algorithm.md.
_STAGE_ESTIMATORS: dict[str, tuple[str, str]] = {
    "paretopo": ("stage1", "pareto_rank"),
    "no_stage1": ("pareto_rank", "pareto_rank"),
    "no_stage2": ("stage1", "stage1"),
    "no_dynamic_weighting": ("stage1", "pareto_rank"),
    "no_pareto_ranking": ("stage1", "scalar_grpo"),
    "grpo": ("grpo", "grpo"),
    "otc_grpo": ("otc_grpo", "otc_grpo"),
    "mo_grpo": ("mo_grpo", "mo_grpo"),
    "fixed_weight": ("fixed_weight", "fixed_weight"),
}


def estimator_for(algorithm: str, stage: int) -> str:
    """Name of the advantage estimator ``algorithm`` uses in ``stage`` (1 or 2).

    Single-stage baselines use the same estimator in both stages. ``no_dynamic_weighting``
    uses the ParetoPO estimators, and the caller must keep ``weights = w_0`` and
    ``rho = 0`` (no weight moves, no amplification); ``no_stage1`` ranks from the start.

    Examples
    --------
    >>> estimator_for("paretopo", 1), estimator_for("paretopo", 2)
    ('stage1', 'pareto_rank')
    """
    if algorithm not in _STAGE_ESTIMATORS:
        raise ValueError(f"unknown algorithm {algorithm!r}; known: {', '.join(ALGORITHMS)}")
    if stage not in (1, 2):
        raise ValueError(f"stage must be 1 or 2, got {stage!r}")
    return _STAGE_ESTIMATORS[algorithm][stage - 1]


def nonzero_groups(advantages: torch.Tensor, *, atol: float = 0.0) -> torch.Tensor:
    """Groups that carry a learning signal (dynamic sampling); (B, G) -> bool (B,).

    Examples
    --------
    >>> nonzero_groups(torch.tensor([[0.0, 0.0], [0.5, -0.5]]))
    tensor([False,  True])
    """
    return (advantages.abs() > atol).any(-1)
