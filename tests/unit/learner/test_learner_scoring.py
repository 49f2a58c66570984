"""Scoring: r_acc from the grader, the (B, G, M) reward matrix, n* inputs, data order."""

from __future__ import annotations

import math

import pytest
import torch

from paretopo.config import RewardConfig
from paretopo.jobs import GroupResult, JobKind, TrajectoryRecord
from services.learner import scoring
from services.learner.data import PromptSource


@pytest.fixture(scope="module")
def prompts() -> PromptSource:
    return PromptSource("calc", train_items=40, eval_items=5, seed=0)


def _traj(i: int, answer: str | None, calls: int, generated: int) -> TrajectoryRecord:
    return TrajectoryRecord(sample_index=i, prompt_ids=[1, 2], completion_ids=[3] * (generated + 2),
                            loss_mask=[1] * generated + [0, 0], completion_text="x",
                            answer=answer, n_tool_calls=calls, finish_reason="answer",
                            policy_version=0)


def _group(prompt_id: str, trajs: list[TrajectoryRecord]) -> GroupResult:
    return GroupResult(job_id=f"j-{prompt_id}", run_id="r", kind=JobKind.TRAIN, step=0,
                       prompt_id=prompt_id, worker="w", trajectories=trajs)


def test_accuracy_uses_the_task_grader(prompts: PromptSource) -> None:
    item = prompts.train[0].item
    group = _group(item.id, [_traj(0, item.answer, 1, 4), _traj(1, f"{item.answer}.0", 0, 4),
                             _traj(2, "nonsense", 0, 4), _traj(3, None, 2, 4)])
    acc = scoring.accuracy([group], prompts)
    assert acc.tolist() == [[1.0, 1.0, 0.0, 0.0]]  # math equivalence, not string equality
    assert scoring.successful_calls([group], acc) == [(item.id, [1, 0])]


def test_unknown_prompt_is_named(prompts: PromptSource) -> None:
    with pytest.raises(ValueError, match="unknown prompt 'nope'"):
        scoring.accuracy([_group("nope", [_traj(0, "1", 0, 1)])], prompts)


def test_reward_matrix_columns(prompts: PromptSource) -> None:
    ids = [prompts.train[0].id, prompts.train[1].id]
    groups = [_group(ids[0], [_traj(0, "a", 1, 10), _traj(1, "b", 3, 50)]),
              _group(ids[1], [_traj(0, "a", 0, 0), _traj(1, "b", 2, 100)])]
    acc = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    r = scoring.reward_matrix(["accuracy", "tool_efficiency", "length_efficiency"], groups, acc,
                              [1, -1], reward=RewardConfig(), token_budget=100)
    assert r.shape == (2, 2, 3)
    assert r[..., 0].tolist() == acc.tolist()
    assert r[0, 0, 1].item() == pytest.approx(1.0)  # m = n* = 1
    assert r[0, 1, 1].item() == pytest.approx(math.sin(2 * 3 * 1 / 4 * math.pi / 2))
    assert r[1, :, 1].tolist() == [0.0, 0.0]  # n* unknown: no efficiency signal
    assert r[..., 2].tolist() == [[0.9, 0.5], [1.0, 0.0]]


def test_gated_tool_reward(prompts: PromptSource) -> None:
    groups = [_group(prompts.train[0].id, [_traj(0, "a", 1, 1), _traj(1, "b", 1, 1)])]
    acc = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    r = scoring.reward_matrix(["accuracy", "tool_efficiency"], groups, acc, [1],
                              reward=RewardConfig(gate_tool_reward_on_success=True),
                              token_budget=10)
    assert r[0, :, 1].tolist() == [1.0, 0.0]


def test_data_order_is_a_function_of_seed_and_position(prompts: PromptSource) -> None:
    again = PromptSource("calc", train_items=40, eval_items=5, seed=0)
    first_epoch = [prompts.at(i).id for i in range(40)]
    assert [again.at(i).id for i in range(40)] == first_epoch
    assert sorted(first_epoch) == sorted(p.id for p in prompts.train)  # an epoch is a pass
    assert [prompts.at(40 + i).id for i in range(40)] != first_epoch  # reshuffled
    assert not {p.id for p in prompts.validation} & set(first_epoch)  # held out


def test_outcome_summary_by_difficulty_and_on_tool_needing_items(prompts: PromptSource) -> None:
    easy = next(p for p in prompts.train if p.item.min_calls == 0)
    hard = next(p for p in prompts.train if p.item.min_calls == 1)
    groups = [_group(easy.id, [_traj(0, easy.item.answer, 0, 3), _traj(1, "x", 2, 3)]),
              _group(hard.id, [_traj(0, hard.item.answer, 1, 3), _traj(1, hard.item.answer, 3, 3)])]
    acc = scoring.accuracy(groups, prompts)
    out = scoring.outcome_summary(groups, acc, prompts)
    assert out["em"] == pytest.approx(0.75) and out["tool_calls"] == pytest.approx(1.5)
    assert out[f"em/{easy.item.difficulty}"] == pytest.approx(0.5)
    assert out[f"tool_calls/{easy.item.difficulty}"] == pytest.approx(1.0)
    assert out["needs_tool/em"] == pytest.approx(1.0)
    assert out["needs_tool/tool_calls"] == pytest.approx(2.0)


def test_prompts_carry_their_task_and_its_search_depth() -> None:
    source = PromptSource("kbqa", train_items=4, eval_items=2, seed=0)
    assert source.train[0].task.search_top_k == 1  # what the warm start learned to read
    assert source.validation[0].task is source.task


def test_groups_hit_by_a_tool_outage_are_marked(prompts: PromptSource) -> None:
    ok = _traj(0, "1", 1, 2)
    down = ok.model_copy(update={"n_tool_unavailable": 1, "n_tool_errors": 1})
    refused = ok.model_copy(update={"n_tool_errors": 1})  # the model's own error
    groups = [_group("a", [ok, ok]), _group("b", [ok, down]), _group("c", [refused, ok])]
    assert scoring.tool_outage(groups).tolist() == [False, True, False]
