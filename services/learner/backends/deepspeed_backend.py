"""DeepSpeed ZeRO (stage 2 or 3) backend for GPUs. `deepspeed` is imported only here, and
this module only when the configuration chooses it.

Not exercised on the CPU machines this project is tested on: the configuration mapping
(`deepspeed_config`) and the import guard are tested; the engine calls follow DeepSpeed's
documented training loop (`initialize`, `backward`, `step`).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from paretopo.errors import FailedPrecondition
from services.learner.config import BackendConfig, OptimConfig


def deepspeed_config(optim: OptimConfig, backend: BackendConfig) -> dict[str, Any]:
    """The DeepSpeed JSON config for our update: AdamW, clipping, ZeRO stage, bf16 on GPU.

    Gradient accumulation is driven by the learner (micro-batches of one mini-batch), so
    DeepSpeed sees one accumulation step and the learner marks the boundary itself.
    """
    zero: dict[str, Any] = {"stage": backend.zero_stage, "overlap_comm": True,
                            "contiguous_gradients": True}
    if backend.zero_stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    return {
        "train_micro_batch_size_per_gpu": optim.micro_batch_size,
        "gradient_accumulation_steps": 1,
        "gradient_clipping": optim.grad_clip,
        "optimizer": {"type": "AdamW", "params": {
            "lr": optim.lr, "weight_decay": optim.weight_decay, "betas": [0.9, 0.999],
            "eps": 1e-8}},
        "zero_optimization": zero,
        "bf16": {"enabled": backend.device.startswith("cuda")},
        "steps_per_print": 10**9,
    }


def import_deepspeed() -> Any:
    """`deepspeed`, or `FailedPrecondition` saying how to get it."""
    try:
        return importlib.import_module("deepspeed")
    except ImportError as exc:
        raise FailedPrecondition(
            f"backend.name is 'deepspeed' but DeepSpeed cannot be imported ({exc}); install "
            "the GPU extra (pip install -e '.[gpu]') on a CUDA machine, or set backend.name: "
            "torch") from None


class DeepSpeedBackend:
    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                 optim: OptimConfig, backend: BackendConfig) -> None:
        deepspeed = import_deepspeed()
        self.tokenizer = tokenizer
        self.engine, self.optimizer, _, _ = deepspeed.initialize(
            model=model, model_parameters=model.parameters(),
            config=deepspeed_config(optim, backend))
        self.device = torch.device(self.engine.device)
        self._pending = 0

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.engine(input_ids=input_ids, attention_mask=attention_mask).logits

    def train(self, mode: bool) -> None:
        self.engine.train(mode)

    def backward(self, loss: torch.Tensor) -> None:
        # The learner already weights each micro-batch by its token share.
        self.engine.set_gradient_accumulation_boundary(False)
        self.engine.backward(loss, scale_wrt_gas=False)
        self._pending += 1

    def step(self) -> float:
        self.engine.set_gradient_accumulation_boundary(True)
        self.engine.step()
        self._pending = 0
        norm = self.engine.get_global_grad_norm()
        return float(norm) if norm is not None else 0.0

    def save_policy(self, path: Path) -> None:
        state = self.engine._zero3_consolidated_16bit_state_dict() \
            if self.engine.zero_optimization_stage() == 3 else None
        self.engine.module.save_pretrained(path, state_dict=state)
        self.tokenizer.save_pretrained(path)

    def optimizer_state(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state)
