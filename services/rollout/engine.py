"""The engine interface of the rollout service (the factory is `engine_factory.py`).

An engine turns token-id prompts into one finished turn each: it samples until a stop string,
the end-of-sequence token or `max_new_tokens`. The agent loop (`agent.py`) is written against
`Engine` only, so the PyTorch engine (CPU or CUDA, `torch_engine.py`) and the vLLM engine (GPU,
`vllm_engine.py`) are interchangeable; vLLM is imported only when chosen.

Semantics shared by both engines (vLLM's own, with `include_stop_str_in_output=True`):
- `token_ids` are every sampled token, the one that completed a stop string and the EOS token
  included (the model produced them, so the learner trains on them);
- `text` is their decoding with special tokens kept, minus the EOS token, cut right after the
  first stop string (a multi-character token can run past it; its tail is not in `text`);
- `finish` is "stop" (a stop string), "eos" or "length" (`max_new_tokens` or the context).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from transformers import PreTrainedTokenizerBase

from paretopo.jobs import SamplingParams

__all__ = ["Engine", "Finish", "Generation", "PromptTooLong", "check_prompt_lengths"]

Finish = Literal["stop", "eos", "length"]


class PromptTooLong(ValueError):
    """A prompt leaves no room to generate in the model's context."""


def check_prompt_lengths(prompts: Sequence[Sequence[int]], context_length: int) -> None:
    """Refuse a request whose prompts leave no room to generate, before it is batched with
    others (one over-long prompt must fail its own request, not the whole batch)."""
    for ids in prompts:
        if not ids:
            raise ValueError("empty prompt: an engine needs at least one prompt token")
        if len(ids) >= context_length:
            raise PromptTooLong(f"prompt of {len(ids)} tokens leaves no room to generate: "
                                f"the model's context is {context_length} tokens")


@dataclass(frozen=True)
class Generation:
    """One finished turn of one sequence."""

    token_ids: list[int]
    text: str
    finish: Finish
    logprobs: list[float] | None = None


@runtime_checkable
class Engine(Protocol):
    """What the agent loop needs from an inference engine."""

    version: int
    tokenizer: PreTrainedTokenizerBase

    async def generate(self, prompts: Sequence[Sequence[int]], sampling: SamplingParams,
                       stop: Sequence[str], max_new_tokens: int) -> list[Generation]: ...

    def load_weights(self, path: str, version: int) -> None: ...
