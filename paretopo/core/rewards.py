"""Objective functions: tool-use efficiency (Eq. 4) and response-length efficiency.

``algorithm.md``, "Objectives". Each function scores one trajectory or a batch and returns
one objective column; the learner stacks the columns into the ``(B, G, M)`` reward matrix.
r_acc's answer checking (math-verify, SQuAD exact match) is library code:
`paretopo.answers`.
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["length_efficiency", "tool_efficiency"]


def tool_efficiency(m: Any, n: Any, c: float = 1.0) -> Any:
    """Tool-use efficiency r_tool (Eq. 4, the OTC-GRPO reward).

    ``f(m, n) = m`` if ``n = 0`` else ``2mn / (m + n)``;
    ``r_tool = cos(mπ / (2m + c))`` if ``n = 0`` (1 at m = 0) else ``sin(f·π / (2n))``.

    Parameters
    ----------
    m : tensor, array or number, shape broadcastable with ``n``
        Tool calls made (>= 0).
    n : tensor, array or number
        n*(q), the optimal-call estimate; ``n < 0`` means unknown and gives r_tool = 0
        (choice in ``algorithm.md``: no efficiency signal before a known solution).
    c : float
        Smoothing constant, > 0.

    Returns
    -------
    torch.Tensor if ``m`` or ``n`` is a tensor (floating dtype of the inputs, else the
    default dtype), a float for two numbers, else an ``np.ndarray``. Values in [0, 1].

    Examples
    --------
    >>> round(tool_efficiency(1, 2), 6), tool_efficiency(2, 2), tool_efficiency(3, -1)
    (0.866025, 1.0, 0.0)
    >>> tool_efficiency(torch.tensor([0, 1, 2]), torch.tensor([0, 0, 0]))
    tensor([1.0000, 0.5000, 0.3090])
    """
    if not c > 0:
        raise ValueError(f"c must be > 0, got {c}")
    as_tensor = isinstance(m, torch.Tensor) or isinstance(n, torch.Tensor)
    dtypes = [x.dtype for x in (m, n) if isinstance(x, torch.Tensor) and x.is_floating_point()]
    out_dtype = dtypes[0] if dtypes else torch.get_default_dtype()
    mt = torch.as_tensor(m, dtype=torch.float64)
    nt = torch.as_tensor(n, dtype=torch.float64, device=mt.device)
    if bool((mt < 0).any()) or not bool(torch.isfinite(mt).all()):
        raise ValueError("m (tool calls) must be finite and >= 0")
    known, zero = nt > 0, nt == 0
    safe_n = torch.where(known, nt, torch.ones_like(nt))
    f = 2 * mt * safe_n / (mt + safe_n)
    solved_with_tools = torch.sin(f * math.pi / (2 * safe_n))
    solved_without = torch.cos(mt * math.pi / (2 * mt + c))
    r = torch.where(known, solved_with_tools, torch.where(zero, solved_without, 0.0))
    # sin/cos of arguments at the ends of [0, π] can round a hair below 0.
    r = r.clamp(0.0, 1.0)
    if as_tensor:
        return r.to(out_dtype)
    if r.ndim == 0:
        return float(r)
    return r.numpy()


def length_efficiency(n_tokens: Any, budget: float) -> Any:
    """Response-length efficiency r_len, the optional third objective (choice; the paper
    names the objective but gives no formula): ``r_len = 1 − min(L, budget) / budget``.

    ``L`` counts the tokens the model generated (tool outputs and the prompt excluded), so
    r_len is 1 for an empty response, falls linearly, and is 0 at or beyond the budget.

    Parameters
    ----------
    n_tokens : tensor, array or number
        Generated tokens per trajectory (>= 0).
    budget : float
        Completion token budget, > 0 (the rollout's ``max_completion_tokens``).

    Returns
    -------
    Same kind as ``tool_efficiency``: a tensor for a tensor, a float for a number, else an
    ``np.ndarray``. Values in [0, 1].

    Examples
    --------
    >>> length_efficiency(0, 100), length_efficiency(25, 100), length_efficiency(300, 100)
    (1.0, 0.75, 0.0)
    """
    if not budget > 0:
        raise ValueError(f"budget must be > 0, got {budget}")
    is_tensor = isinstance(n_tokens, torch.Tensor)
    out_dtype = (n_tokens.dtype if is_tensor and n_tokens.is_floating_point()
                 else torch.get_default_dtype())
    length = torch.as_tensor(n_tokens, dtype=torch.float64)
    if bool((length < 0).any()) or not bool(torch.isfinite(length).all()):
        raise ValueError("n_tokens must be finite and >= 0")
    r = 1.0 - length.clamp(max=budget) / budget
    if is_tensor:
        return r.to(out_dtype)
    if r.ndim == 0:
        return float(r)
    return r.numpy()
