"""Training backends: `torch` (CPU or one GPU) and `deepspeed` (ZeRO 2/3, imported only
when chosen)."""

from __future__ import annotations

from pathlib import Path

from services.learner.backends.base import Backend, UpdateStats, policy_update, recompute_logprobs
from services.learner.config import BackendConfig, OptimConfig

__all__ = ["Backend", "UpdateStats", "build_backend", "policy_update", "recompute_logprobs"]


def build_backend(model_path: Path, optim: OptimConfig, backend: BackendConfig) -> Backend:
    """Load the policy at `model_path` (HF format) onto the chosen backend."""
    import torch
    from transformers.utils import logging as hf_logging

    from paretopo.hf_policy import load_policy

    hf_logging.disable_progress_bar()  # one bar per saved version would flood the console
    torch.set_num_threads(backend.threads)
    if backend.name == "deepspeed":
        from services.learner.backends.deepspeed_backend import DeepSpeedBackend, import_deepspeed

        import_deepspeed()  # fail before loading weights when it is missing
        model, tokenizer = load_policy(model_path)
        enable_memory_options(model, backend)
        return DeepSpeedBackend(model, tokenizer, optim, backend)
    from services.learner.backends.torch_backend import TorchBackend

    model, tokenizer = load_policy(model_path)
    enable_memory_options(model, backend)
    return TorchBackend(model, tokenizer, optim, device=backend.device,
                        bf16_autocast=backend.bf16_autocast, logprob_chunk=backend.logprob_chunk,
                        publish_dtype=backend.published_dtype,
                        share_prefixes=backend.prefixes_shared)


def enable_memory_options(model, backend: BackendConfig) -> None:
    """Gradient (activation) checkpointing of every decoder layer, non-reentrant, when
    `backend.gradient_checkpointing`."""
    if backend.gradient_checkpointing:
        kwargs = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.24's name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        model.config.use_cache = False  # a KV cache is useless in training and warns
