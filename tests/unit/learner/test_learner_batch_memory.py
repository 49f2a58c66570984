"""Memory options of the update (issue 18, item 4): log-probabilities and entropy in slices
equal the unchunked result (values and gradients) without ever keeping a full-vocabulary fp32
tensor; gradient checkpointing gives the same gradients; bf16 autocast only on CUDA; weights
published in bf16 when asked while checkpoints keep fp32."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from paretopo.hf_policy import load_policy
from services.learner import checkpoint
from services.learner.backends import build_backend
from services.learner.batch import token_logprobs
from services.learner.config import BackendConfig, OptimConfig

N, T, V = 3, 37, 1000


def _reference(logits: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The plain formula: full fp32 log-softmax, gather, entropy -sum(p log p)."""
    log_probs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    taken = log_probs.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return taken, -(log_probs.exp() * log_probs).sum(-1).detach()


def _inputs(seed: int = 0, dtype: torch.dtype = torch.float32):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(N, T, V, generator=g) * 3).to(dtype).requires_grad_(True)
    ids = torch.randint(0, V, (N, T), generator=g)
    weights = torch.randn(N, T - 1, generator=g)
    return logits, ids, weights


@pytest.mark.parametrize("chunk", [0, 1, 5, 16, 36, 100])
def test_chunked_logprobs_and_entropy_equal_unchunked_with_gradients(chunk: int) -> None:
    logits, ids, w = _inputs()
    ref_taken, ref_entropy = _reference(logits, ids)
    (ref_taken * w).sum().backward()
    ref_grad, logits.grad = logits.grad.clone(), None

    taken, entropy = token_logprobs(logits, ids, chunk=chunk)
    assert taken.shape == entropy.shape == (N, T - 1)
    assert torch.allclose(taken, ref_taken, atol=1e-5, rtol=0)
    assert torch.allclose(entropy, ref_entropy, atol=1e-5, rtol=0)
    assert not entropy.requires_grad
    (taken * w).sum().backward()
    assert torch.allclose(logits.grad, ref_grad, atol=1e-5, rtol=0)


def test_chunked_no_grad_path_equals_unchunked() -> None:
    logits, ids, _ = _inputs(1)
    with torch.no_grad():
        whole = token_logprobs(logits, ids, chunk=0)
        sliced = token_logprobs(logits, ids, chunk=7)
    for a, b in zip(whole, sliced, strict=True):
        assert torch.allclose(a, b, atol=1e-5, rtol=0)


def _saved_fp32_full_vocab(chunk: int) -> int:
    """Saved-for-backward fp32 tensors of the whole micro-batch's (N, T-1, V) size."""
    logits, ids, w = _inputs(2, torch.bfloat16)
    big = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.dtype == torch.float32 and t.numel() >= N * (T - 1) * V:
            big.append(tuple(t.shape))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        taken, _ = token_logprobs(logits, ids, chunk=chunk)
        (taken * w).sum().backward()
    assert logits.grad is not None and logits.grad.dtype == torch.bfloat16
    return len(big)


def test_chunking_keeps_no_full_vocabulary_fp32_tensor_for_backward() -> None:
    assert _saved_fp32_full_vocab(chunk=0) > 0  # the unchunked form keeps one
    assert _saved_fp32_full_vocab(chunk=8) == 0


def _grads(tiny_policy, checkpointing: bool) -> tuple[bool, dict[str, torch.Tensor]]:
    backend = build_backend(tiny_policy, OptimConfig(), BackendConfig(
        gradient_checkpointing=checkpointing, logprob_chunk=4))
    backend.train(True)
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(1, 90, (4, 12), generator=g)
    taken, _ = token_logprobs(backend.logits(ids, torch.ones_like(ids)), ids, chunk=4)
    backend.backward(taken.mean())
    grads = {n: p.grad.clone() for n, p in backend.model.named_parameters()
             if p.grad is not None}
    model = backend.model
    # transformers 5.24 renamed the flag (the old name warns); the backend takes either.
    on = getattr(model, "is_activation_checkpointing", None)
    return (model.is_gradient_checkpointing if on is None else on), grads


def test_gradient_checkpointing_is_on_and_gives_the_same_gradients(tiny_policy) -> None:
    on, with_ckpt = _grads(tiny_policy, True)
    off, without = _grads(tiny_policy, False)
    assert on and not off
    assert with_ckpt.keys() == without.keys() and with_ckpt
    for name, grad in with_ckpt.items():
        assert torch.allclose(grad, without[name], atol=1e-6, rtol=1e-5), name


def test_autocast_is_off_on_cpu(tiny_policy) -> None:
    backend = build_backend(tiny_policy, OptimConfig(), BackendConfig(bf16_autocast=True))
    assert backend.autocast is False
    ids = torch.tensor([[1, 2, 3, 4]])
    assert backend.logits(ids, torch.ones_like(ids)).dtype == torch.float32


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_autocast_runs_the_forward_in_bf16_on_cuda(tiny_policy) -> None:
    backend = build_backend(tiny_policy, OptimConfig(), BackendConfig(device="cuda"))
    ids = torch.tensor([[1, 2, 3, 4]], device="cuda")
    assert backend.logits(ids, torch.ones_like(ids)).dtype == torch.bfloat16
    assert next(backend.model.parameters()).dtype == torch.float32  # fp32 master weights


def test_publish_dtype_follows_the_device() -> None:
    assert BackendConfig(device="cuda").published_dtype == "bfloat16"
    assert BackendConfig(device="cuda:3").published_dtype == "bfloat16"
    assert BackendConfig(device="cpu").published_dtype == "float32"
    assert BackendConfig(device="cuda", publish_dtype="float32").published_dtype == "float32"


def test_bf16_publishing_keeps_fp32_checkpoints(tiny_policy, tmp_path) -> None:
    backend = build_backend(tiny_policy, OptimConfig(), BackendConfig(publish_dtype="bfloat16"))
    backend.save_policy(tmp_path / "published")
    published = load_file(tmp_path / "published" / "model.safetensors")
    assert {t.dtype for t in published.values()} == {torch.bfloat16}
    assert json.loads((tmp_path / "published" / "config.json").read_text())["dtype"] == \
        "bfloat16"
    master = dict(backend.model.named_parameters())
    for name, tensor in published.items():
        assert torch.equal(tensor, master[name].detach().to(torch.bfloat16)), name
    assert next(backend.model.parameters()).dtype == torch.float32  # training stays fp32
    model, _ = load_policy(tmp_path / "published")  # what a rollout worker loads
    assert model.config.tie_word_embeddings == backend.model.config.tie_word_embeddings

    saved = checkpoint.save_checkpoint(tmp_path / "ckpt", checkpoint.LoopState(step=1), backend)
    kept = load_file(saved / "policy" / "model.safetensors")
    assert {t.dtype for t in kept.values()} == {torch.float32}
    for name, tensor in kept.items():
        assert torch.equal(tensor, master[name].detach()), name
