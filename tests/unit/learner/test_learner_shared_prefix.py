"""The learner runs each distinct prompt of a micro-batch once (`paretopo.shared_prefix`):
the log-probabilities, entropies and gradients are those of running every row whole."""

from __future__ import annotations

import torch

from paretopo.hf_policy import load_policy
from paretopo.jobs import TrajectoryRecord
from paretopo.shared_prefix import split_rows
from services.learner.backends.base import batch_logprobs
from services.learner.backends.torch_backend import TorchBackend
from services.learner.batch import PolicyBatch, collate, first_scored, token_logprobs
from services.learner.config import OptimConfig


def _groups(prompt_lengths: tuple[int, ...], group_size: int) -> list[TrajectoryRecord]:
    """`group_size` completions of each prompt, of several lengths, each with a tool-output
    token that is not scored."""
    g = torch.Generator().manual_seed(7)
    out = []
    for p in prompt_lengths:
        prompt = torch.randint(1, 90, (p,), generator=g).tolist()
        for k in range(group_size):
            n = 3 + (k * 3 + p) % 6
            mask = [1] * n
            mask[1] = 0
            out.append(TrajectoryRecord(
                sample_index=k, prompt_ids=prompt,
                completion_ids=torch.randint(1, 90, (n,), generator=g).tolist(), loss_mask=mask,
                completion_text="", answer=None, finish_reason="eos", policy_version=0))
    return out


def _whole(backend: TorchBackend, batch: PolicyBatch) -> tuple[torch.Tensor, torch.Tensor]:
    return token_logprobs(backend.logits(batch.input_ids, batch.attention_mask), batch.input_ids)


def _surrogate_grads(backend: TorchBackend, logp: torch.Tensor, batch: PolicyBatch
                     ) -> list[torch.Tensor]:
    weights = torch.linspace(-1.0, 1.0, len(batch))[:, None]
    backend.model.zero_grad(set_to_none=True)
    (weights * logp)[batch.loss_mask].sum().backward()
    return [p.grad.clone() for p in backend.model.parameters()]


def test_each_distinct_prompt_is_one_prefix() -> None:
    batch = collate(_groups((3, 5, 4), group_size=3), pad_id=0)
    rows = split_rows(batch.input_ids, batch.attention_mask, first_scored(batch))
    assert rows.prefixes.shape[0] == 3
    assert rows.owner.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    # The prompt's last token stays with the row: its logit scores the first generated token.
    assert rows.starts.tolist() == [2] * 3 + [4] * 3 + [3] * 3
    lengths = batch.attention_mask.sum(1)
    assert torch.equal(rows.starts + rows.suffix_mask.sum(1), lengths)


def test_shared_prompts_give_the_numbers_and_gradients_of_whole_rows(tiny_policy) -> None:
    model, tokenizer = load_policy(tiny_policy)
    backend = TorchBackend(model, tokenizer, OptimConfig())
    backend.train(True)
    batch = collate(_groups((3, 6, 4, 8), group_size=4), pad_id=0)

    whole_logp, whole_entropy = _whole(backend, batch)
    shared_logp, shared_entropy = batch_logprobs(backend, batch)
    mask = batch.loss_mask
    assert shared_logp.shape == whole_logp.shape == mask.shape
    assert torch.allclose(shared_logp[mask], whole_logp[mask], atol=1e-5)
    assert torch.allclose(shared_entropy[mask], whole_entropy[mask], atol=1e-5)

    whole = _surrogate_grads(backend, whole_logp, batch)
    shared = _surrogate_grads(backend, shared_logp, batch)
    for a, b in zip(whole, shared, strict=True):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)


def test_without_sharing_the_backend_runs_rows_whole(tiny_policy) -> None:
    model, tokenizer = load_policy(tiny_policy)
    backend = TorchBackend(model, tokenizer, OptimConfig(), share_prefixes=False)
    batch = collate(_groups((3, 5), group_size=2), pad_id=0)
    calls = []
    forward = backend.logits
    backend.logits = lambda *a, **k: calls.append(k.get("cache")) or forward(*a, **k)
    with torch.no_grad():
        logp, _ = batch_logprobs(backend, batch)
        assert torch.equal(logp, _whole(backend, batch)[0])
    assert calls == [None, None]


def test_gradient_checkpointing_turns_sharing_off(tiny_policy) -> None:
    """transformers drops a layer's KV cache when it recomputes activations: sharing there
    would silently score completions without their prompts."""
    from services.learner.backends import build_backend
    from services.learner.config import BackendConfig

    assert BackendConfig().prefixes_shared
    config = BackendConfig(gradient_checkpointing=True)
    assert not config.prefixes_shared
    backend = build_backend(tiny_policy, OptimConfig(), config)
    backend.train(True)
    batch = collate(_groups((3, 5), group_size=2), pad_id=0)
    logp, _ = batch_logprobs(backend, batch)
    assert torch.allclose(logp[batch.loss_mask], _whole(backend, batch)[0][batch.loss_mask],
                          atol=1e-6)
