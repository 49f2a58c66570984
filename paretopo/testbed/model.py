"""The testbed policy: a small `Qwen2ForCausalLM` (the Qwen2.5 architecture the paper trains).

Built from a config of about 1.6 M parameters, saved and loaded in the standard Hugging Face
format (`config.json` + `model.safetensors` + the tokenizer files), so the rest of the system
loads the testbed policy and a real Qwen2.5 checkpoint through the same
`paretopo.hf_policy.load_policy`.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from transformers import PreTrainedTokenizerBase, Qwen2Config, Qwen2ForCausalLM


class ModelConfig(BaseModel):
    """Shape of the testbed policy (defaults: 4 layers of width 192, about 1.6 M parameters)."""

    model_config = ConfigDict(extra="forbid")

    hidden_size: int = Field(192, ge=16, description="Width of the residual stream.")
    intermediate_size: int = Field(512, ge=16, description="Width of the MLP hidden layer.")
    num_hidden_layers: int = Field(4, ge=1, description="Number of decoder layers.")
    num_attention_heads: int = Field(6, ge=1, description="Query heads per layer.")
    num_key_value_heads: int = Field(2, ge=1, description="Key/value heads (grouped query).")
    max_position_embeddings: int = Field(1024, ge=64, description="Longest context, in tokens.")
    rope_theta: float = Field(10000.0, gt=0, description="RoPE base frequency.")
    tie_word_embeddings: bool = Field(
        True, description="Share the input embeddings with the output layer (as the small "
        "Qwen2.5 models do).")


#: The smallest policy (about 10 k parameters): tests and smoke runs that need a real model
#: but not a trained one.
TINY_CONFIG = ModelConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                          num_attention_heads=2, num_key_value_heads=1)


def build_model(
    tokenizer: PreTrainedTokenizerBase, config: ModelConfig | None = None, *, seed: int = 0
) -> Qwen2ForCausalLM:
    """A freshly initialised policy sized to `tokenizer`'s vocabulary (deterministic in seed)."""
    cfg = config or ModelConfig()
    hf_config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        rope_theta=cfg.rope_theta,
        tie_word_embeddings=cfg.tie_word_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    return Qwen2ForCausalLM(hf_config)


def n_parameters(model: torch.nn.Module) -> int:
    """Distinct parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
