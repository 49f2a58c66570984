"""The update step on a tiny policy: alignment of the loss mask, micro-batch invariance,
the loss going down on a fixed batch, and the DeepSpeed mapping and import guard."""

from __future__ import annotations

import pytest
import torch

from paretopo.config import LossConfig
from paretopo.hf_policy import load_policy
from paretopo.jobs import TrajectoryRecord
from services.learner.backends import policy_update, recompute_logprobs
from services.learner.backends.deepspeed_backend import deepspeed_config
from services.learner.backends.torch_backend import TorchBackend
from services.learner.batch import collate, token_logprobs
from services.learner.config import BackendConfig, OptimConfig


def _trajectories(n: int, seed: int = 0) -> list[TrajectoryRecord]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        p, c = 3 + i % 3, 4 + (i * 2) % 5
        completion = torch.randint(1, 90, (c,), generator=g).tolist()
        mask = [1] * c
        mask[1] = 0  # a tool-output token inside the completion
        out.append(TrajectoryRecord(
            sample_index=i, prompt_ids=torch.randint(1, 90, (p,), generator=g).tolist(),
            completion_ids=completion, loss_mask=mask, completion_text="", answer=None,
            finish_reason="eos", policy_version=0))
    return out


def _backend(path, **optim) -> TorchBackend:
    model, tokenizer = load_policy(path)
    return TorchBackend(model, tokenizer, OptimConfig(**optim))


def test_collate_aligns_mask_with_generated_tokens() -> None:
    t = _trajectories(1)[0]
    batch = collate([t], pad_id=0)
    p = len(t.prompt_ids)
    scored = batch.input_ids[0, 1:][batch.loss_mask[0]].tolist()
    assert scored == [tok for tok, m in zip(t.completion_ids, t.loss_mask, strict=True) if m]
    assert not batch.loss_mask[0, : p - 1].any()


def test_recompute_logprobs_is_padding_invariant(tiny_policy) -> None:
    backend = _backend(tiny_policy)
    trajs = _trajectories(5)
    together = recompute_logprobs(backend, collate(trajs, 0), micro_batch_size=5)
    for i, t in enumerate(trajs):
        alone = recompute_logprobs(backend, collate([t], 0), micro_batch_size=1)
        mask = collate([t], 0).loss_mask[0]
        assert torch.allclose(together[i, : mask.shape[0]][mask], alone[0][mask], atol=1e-5)


def _grads_after_one_accumulation(path, micro: int) -> list[torch.Tensor]:
    backend = _backend(path, lr=1e-9)
    grads = []
    backend.step = lambda: (grads.extend(p.grad.clone() for p in backend.model.parameters()
                                         if p.grad is not None), 0.0)[1]
    batch = collate(_trajectories(8), 0)
    old = recompute_logprobs(backend, batch, 8)
    adv = torch.linspace(-1, 1, 8)
    policy_update(backend, batch, old, adv, LossConfig(), mini_batches=1, micro_batch_size=micro)
    return grads


def test_micro_batching_does_not_change_the_gradient(tiny_policy) -> None:
    """Style rule 21: micro-batch 1 x 8 accumulation steps = micro-batch 8 x 1."""
    one = _grads_after_one_accumulation(tiny_policy, 1)
    eight = _grads_after_one_accumulation(tiny_policy, 8)
    assert len(one) == len(eight) > 0
    for a, b in zip(one, eight, strict=True):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)


def test_loss_decreases_on_a_fixed_batch(tiny_policy) -> None:
    torch.manual_seed(0)
    backend = _backend(tiny_policy, lr=3e-3)
    batch = collate(_trajectories(8), 0)
    adv = torch.tensor([1.0, -1.0] * 4)
    old = recompute_logprobs(backend, batch, 8)

    def surrogate() -> float:  # −Σ A·log π over generated tokens: what the update lowers
        with torch.no_grad():
            logp, _ = token_logprobs(backend.logits(batch.input_ids, batch.attention_mask),
                                     batch.input_ids)
        return float(-(adv[:, None] * logp)[batch.loss_mask].mean())

    before = surrogate()
    stats = [policy_update(backend, batch, old, adv, LossConfig(eps_high=10.0, eps_low=0.99),
                           mini_batches=2, micro_batch_size=3) for _ in range(5)]
    assert surrogate() < before - 0.05
    assert stats[0].optimizer_steps == 2 and stats[0].tokens == int(batch.loss_mask.sum())
    assert stats[-1].approx_kl > 0 and stats[0].entropy > 0


def test_approx_kl_is_the_kl_the_update_moved_the_policy_by(tiny_policy) -> None:
    """One mini-batch: the loss's own KL reads π_θ = π_old before the step (0); the reported
    KL is measured after it and equals an independent recomputation."""
    torch.manual_seed(0)
    backend = _backend(tiny_policy, lr=3e-3)
    batch = collate(_trajectories(8), 0)
    old = recompute_logprobs(backend, batch, 8)
    stats = policy_update(backend, batch, old, torch.tensor([1.0, -1.0] * 4), LossConfig(),
                          mini_batches=1, micro_batch_size=3)
    new = recompute_logprobs(backend, batch, 8)
    log_ratio = (new - old)[batch.loss_mask]
    expected = float((torch.expm1(log_ratio) - log_ratio).mean())
    assert expected > 1e-6
    assert stats.approx_kl == pytest.approx(expected, rel=1e-4, abs=1e-8)


def test_clipping_is_reported_after_the_first_mini_batch(tiny_policy) -> None:
    backend = _backend(tiny_policy, lr=5e-2)
    batch = collate(_trajectories(8), 0)
    old = recompute_logprobs(backend, batch, 8)
    stats = policy_update(backend, batch, old, torch.tensor([1.0, -1.0] * 4), LossConfig(),
                          mini_batches=4, micro_batch_size=8)
    assert 0 < stats.clip_fraction < 1


def test_deepspeed_config_mapping() -> None:
    optim = OptimConfig(lr=2e-5, weight_decay=0.1, grad_clip=0.5, micro_batch_size=4)
    cfg = deepspeed_config(optim, BackendConfig(name="deepspeed", zero_stage=3, device="cuda"))
    assert cfg["zero_optimization"]["stage"] == 3
    assert cfg["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    assert cfg["gradient_clipping"] == 0.5 and cfg["train_micro_batch_size_per_gpu"] == 4
    assert cfg["optimizer"]["params"]["lr"] == 2e-5
    assert cfg["optimizer"]["params"]["weight_decay"] == 0.1
    assert cfg["bf16"]["enabled"] is True
    two = deepspeed_config(optim, BackendConfig(name="deepspeed", zero_stage=2))
    assert two["zero_optimization"]["stage"] == 2 and not two["bf16"]["enabled"]


def test_torch_backend_never_imports_deepspeed(tiny_policy) -> None:
    import subprocess
    import sys

    code = ("import sys; from services.learner.backends import build_backend; "
            "from services.learner.config import OptimConfig, BackendConfig; "
            f"build_backend({str(tiny_policy)!r}, OptimConfig(), BackendConfig()); "
            "assert 'deepspeed' not in sys.modules; "
            "assert 'services.learner.backends.deepspeed_backend' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
