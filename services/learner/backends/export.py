"""Writing a policy in Hugging Face format at a chosen dtype (bf16 for publishing on GPU)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase


def cast_state(state: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Floating-point tensors of `state` in `dtype`; tensors that shared storage (tied
    embeddings) still share it, so the export keeps them tied."""
    done: dict[tuple[int, torch.Size], torch.Tensor] = {}
    out = {}
    for name, tensor in state.items():
        if not tensor.is_floating_point() or tensor.dtype == dtype:
            out[name] = tensor
            continue
        key = (tensor.data_ptr(), tensor.shape)
        if key not in done:
            done[key] = tensor.detach().to(dtype)
        out[name] = done[key]
    return out


def export_policy(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, path: Path,
                  dtype: torch.dtype, state: dict[str, torch.Tensor] | None = None) -> None:
    """`model` (or `state`, e.g. a gathered ZeRO-3 state dict) and `tokenizer` into `path`,
    weights and `config.json`'s dtype in `dtype`."""
    tensors = cast_state(state if state is not None else model.state_dict(), dtype)
    saved = model.config.dtype
    try:
        model.save_pretrained(path, state_dict=tensors)
    finally:
        model.config.dtype = saved  # save_pretrained writes the parameters' dtype into it
    config_file = Path(path) / "config.json"
    config = json.loads(config_file.read_text())
    config["dtype"] = str(dtype).removeprefix("torch.")
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    tokenizer.save_pretrained(path)
