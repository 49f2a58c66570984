"""Checkpoint round trip: weights, optimizer, RNG and loop state; atomic LATEST; pruning."""

from __future__ import annotations

import random

import numpy as np
import torch

from paretopo.config import LossConfig
from paretopo.hf_policy import load_policy
from paretopo.jobs import TrajectoryRecord
from services.learner import checkpoint
from services.learner.backends import policy_update, recompute_logprobs
from services.learner.backends.torch_backend import TorchBackend
from services.learner.batch import collate
from services.learner.config import OptimConfig


def _trained_backend(path) -> TorchBackend:
    model, tokenizer = load_policy(path)
    backend = TorchBackend(model, tokenizer, OptimConfig(lr=1e-2))
    traj = TrajectoryRecord(sample_index=0, prompt_ids=[5, 6], completion_ids=[7, 8, 9],
                            loss_mask=[1, 1, 1], completion_text="", finish_reason="eos",
                            policy_version=0)
    batch = collate([traj, traj.model_copy(update={"completion_ids": [9, 9, 9]})], 0)
    old = recompute_logprobs(backend, batch, 2)
    policy_update(backend, batch, old, torch.tensor([1.0, -1.0]), LossConfig(),
                  mini_batches=1, micro_batch_size=2)
    return backend


def test_round_trip(tiny_policy, tmp_path) -> None:
    backend = _trained_backend(tiny_policy)
    state = checkpoint.LoopState(step=7, stage=2, policy_version=9, next_seq=30,
                                 pending_seqs=[26, 28], weights=[0.7, 0.3], rho=0.4,
                                 hypervolume=0.2, metrics_offset=123, elapsed_s=4.5)
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    path = checkpoint.save_checkpoint(tmp_path, state, backend)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())

    assert checkpoint.latest_checkpoint(tmp_path) == path
    model, tokenizer = load_policy(path / "policy")
    restored = TorchBackend(model, tokenizer, OptimConfig(lr=1e-2))
    random.seed(99), np.random.seed(99), torch.manual_seed(99)
    assert checkpoint.restore(path, restored) == state
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
    for a, b in zip(backend.model.parameters(), restored.model.parameters(), strict=True):
        assert torch.equal(a, b)
    saved, loaded = backend.optimizer.state_dict(), restored.optimizer.state_dict()
    assert saved["param_groups"] == loaded["param_groups"]
    for key, value in saved["state"].items():
        assert torch.equal(value["exp_avg"], loaded["state"][key]["exp_avg"])
        assert torch.equal(value["exp_avg_sq"], loaded["state"][key]["exp_avg_sq"])


def test_latest_moves_only_after_a_complete_save_and_old_ones_are_pruned(tiny_policy,
                                                                         tmp_path) -> None:
    backend = _trained_backend(tiny_policy)
    assert checkpoint.latest_checkpoint(tmp_path) is None
    (tmp_path / ".step_000009-crashed").mkdir(parents=True)  # a save killed half way
    for step in (1, 2, 3):
        checkpoint.save_checkpoint(tmp_path, checkpoint.LoopState(step=step), backend, keep=2)
    assert checkpoint.load_state(checkpoint.latest_checkpoint(tmp_path)).step == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["LATEST", "step_000002",
                                                          "step_000003"]


def test_latest_pointing_at_a_missing_directory_means_none(tmp_path) -> None:
    (tmp_path / "LATEST").write_text("step_000005")
    assert checkpoint.latest_checkpoint(tmp_path) is None
