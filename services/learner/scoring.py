"""Scoring finished groups: r_acc from the prompt source's grader (the testbed task's, or
`paretopo.graders` for the paper's datasets), the per-objective reward matrix
(B, G, M) in the order of `algorithm.objectives`, and the step's summary numbers.

Pure functions; the n* values come from the archive (the loop asks it between
`accuracy` and `reward_matrix`, as algorithm.md orders: n* update before r_tool).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from paretopo.config import RewardConfig
from paretopo.core.rewards import length_efficiency, tool_efficiency
from paretopo.jobs import GroupResult
from services.learner.data import PromptSource


def accuracy(groups: Sequence[GroupResult], prompts: PromptSource) -> torch.Tensor:
    """r_acc (B, G): 1 when the trajectory's answer passes the task's grader."""
    rows = []
    for group in groups:
        prompt = prompts.get(group.prompt_id)
        if prompt is None:
            raise ValueError(f"group {group.job_id!r} names unknown prompt {group.prompt_id!r}")
        rows.append([float(prompts.grade(prompt, t.answer)) for t in group.trajectories])
    return torch.tensor(rows, dtype=torch.float64)


def tool_calls(groups: Sequence[GroupResult]) -> torch.Tensor:
    """m, tool calls per trajectory (B, G)."""
    return torch.tensor([[t.n_tool_calls for t in g.trajectories] for g in groups],
                        dtype=torch.float64)


def tool_outage(groups: Sequence[GroupResult]) -> torch.Tensor:
    """(B,) bool: the groups with a call that failed because its tool service was down (an
    infrastructure fault the policy must not be trained on)."""
    return torch.tensor([any(t.n_tool_unavailable for t in g.trajectories) for g in groups],
                        dtype=torch.bool)


def generated_tokens(groups: Sequence[GroupResult]) -> torch.Tensor:
    """Tokens the model generated per trajectory (B, G): the loss-mask sum."""
    return torch.tensor([[sum(t.loss_mask) for t in g.trajectories] for g in groups],
                        dtype=torch.float64)


def successful_calls(
    groups: Sequence[GroupResult], acc: torch.Tensor
) -> list[tuple[str, list[int]]]:
    """Per group, the call counts of its correct trajectories (the archive's n* update)."""
    return [(g.prompt_id, [t.n_tool_calls for t, ok in zip(g.trajectories, acc[b].tolist(),
                                                            strict=True) if ok == 1.0])
            for b, g in enumerate(groups)]


def reward_matrix(
    objectives: Sequence[str],
    groups: Sequence[GroupResult],
    acc: torch.Tensor,
    nstar: Sequence[int],
    *,
    reward: RewardConfig,
    token_budget: int,
) -> torch.Tensor:
    """The reward matrix (B, G, M), columns in `objectives` order.

    accuracy = r_acc; tool_efficiency = Eq. 4 with n = n*(q) (-1: unknown, r_tool = 0),
    times r_acc when `reward.gate_tool_reward_on_success`; length_efficiency = r_len over
    `token_budget`.
    """
    calls = tool_calls(groups)
    n = torch.tensor(list(nstar), dtype=torch.float64).unsqueeze(-1).expand_as(calls)
    r_tool = tool_efficiency(calls, n, reward.tool_smoothing)
    if reward.gate_tool_reward_on_success:
        r_tool = r_tool * acc
    columns = {
        "accuracy": lambda: acc,
        "tool_efficiency": lambda: r_tool,
        "length_efficiency": lambda: length_efficiency(generated_tokens(groups), token_budget),
    }
    unknown = [o for o in objectives if o not in columns]
    if unknown:
        raise ValueError(f"unknown objectives {unknown}; known: {sorted(columns)}")
    return torch.stack([columns[o]() for o in objectives], dim=-1)


def outcome_summary(groups: Sequence[GroupResult], acc: torch.Tensor,
                    prompts: PromptSource) -> dict[str, float]:
    """What a newcomer reads off a validation: EM and #Tool over every sample, per difficulty
    (`em/<level>`, `tool_calls/<level>`), and on the items that need a tool
    (`needs_tool/em`, `needs_tool/tool_calls`) where the task knows those."""
    calls = tool_calls(groups)
    out = {"em": float(acc.mean()), "tool_calls": float(calls.mean())}
    rows: dict[str, list[int]] = {}
    for b, group in enumerate(groups):
        prompt = prompts.get(group.prompt_id)
        if prompt is None:
            continue
        level = prompt.task.difficulty(prompt.item)
        if level is not None:
            rows.setdefault(level, []).append(b)
        needed = prompt.task.min_calls(prompt.item)
        if needed is not None and needed > 0:
            rows.setdefault("needs_tool", []).append(b)
    for name, index in sorted(rows.items()):
        em_key, calls_key = ((f"{name}/em", f"{name}/tool_calls") if name == "needs_tool"
                             else (f"em/{name}", f"tool_calls/{name}"))
        out[em_key] = float(acc[index].mean())
        out[calls_key] = float(calls[index].mean())
    return out
