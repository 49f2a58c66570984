"""Load and save a causal-LM policy in the Hugging Face format, whatever the model.

The testbed's tiny `Qwen2ForCausalLM` and a real Qwen2.5 checkpoint are one directory layout
(`config.json`, `model.safetensors`, tokenizer files), so the learner, the rollout engines
and the evaluation runner load either through the same two functions and never need to know
which task trained it.
"""

from __future__ import annotations

import inspect
import json
from functools import cache
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

#: Declared classes that mean "the tokenizer is exactly tokenizer.json" (ours are saved so).
_GENERIC_CLASSES = frozenset({"TokenizersBackend", "PreTrainedTokenizerFast"})


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """Load any Hugging Face tokenizer (the testbed's or a real model's) from a directory."""
    config_file = Path(path) / "tokenizer_config.json"
    declared = None
    if config_file.is_file():
        declared = json.loads(config_file.read_text()).get("tokenizer_class")
    if declared in _GENERIC_CLASSES:
        return PreTrainedTokenizerFast.from_pretrained(str(path))
    return AutoTokenizer.from_pretrained(str(path))


def save_policy(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, path: str | Path
) -> Path:
    """Save weights (safetensors), config and tokenizer into one directory."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)  # safetensors is the default serialisation
    tokenizer.save_pretrained(out)
    return out


def load_policy(
    path: str | Path, *, dtype: torch.dtype = torch.float32
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load any causal LM checkpoint directory (the testbed's or a real Qwen2.5) for inference."""
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype)
    model.eval()
    return model, load_tokenizer(path)


@cache
def cache_kwarg(model_class: type) -> str:
    """The keyword by which `model_class.forward` takes its KV cache.

    transformers 5.24 renamed `past_key_values` to `cache`. A model of either era accepts the
    other name without complaint (its `**kwargs` swallow it) and then silently recomputes
    without the cache, so a decode step that passes only the new token gets wrong logits;
    every caller that passes a cache asks here instead of naming one. Looked up once per class.
    """
    named = inspect.signature(model_class.forward).parameters
    for name in ("cache", "past_key_values"):
        if name in named:
            return name
    raise TypeError(f"{model_class.__name__}.forward names neither `cache` nor "
                    "`past_key_values`: cannot pass it a KV cache")
