"""Plain PyTorch backend: the policy and AdamW on one device (CPU or one GPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from paretopo.hf_policy import cache_kwarg
from services.learner.backends.export import export_policy
from services.learner.config import OptimConfig


class TorchBackend:
    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                 optim: OptimConfig, *, device: str = "cpu", bf16_autocast: bool = True,
                 logprob_chunk: int = 0, publish_dtype: str = "float32",
                 share_prefixes: bool = True) -> None:
        self.device = torch.device(device)
        # bf16 autocast on CUDA only (CPU bf16 matmuls are slow and not what CI checks).
        self.autocast = bf16_autocast and self.device.type == "cuda"
        self.logprob_chunk = logprob_chunk
        self.share_prefixes = share_prefixes
        self.publish_dtype = getattr(torch, publish_dtype)
        self.model = model.to(self.device)
        self.config = model.config
        self._cache_kwarg = cache_kwarg(type(model))
        self.tokenizer = tokenizer
        self.grad_clip = optim.grad_clip
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=optim.lr,
                                           weight_decay=optim.weight_decay)

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *,
               position_ids: torch.Tensor | None = None, cache: DynamicCache | None = None,
               ) -> torch.Tensor:
        cached = {} if cache is None else {self._cache_kwarg: cache, "use_cache": True}
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              position_ids=position_ids, **cached).logits

    def train(self, mode: bool) -> None:
        self.model.train(mode)

    def backward(self, loss: torch.Tensor, *, last: bool = True) -> None:
        del last  # gradients simply accumulate until step()
        loss.backward()

    def step(self) -> float:
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    def save_policy(self, path: Path, *, dtype: torch.dtype | None = None) -> None:
        export_policy(self.model, self.tokenizer, path, dtype or self.publish_dtype)

    def optimizer_state(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state)
