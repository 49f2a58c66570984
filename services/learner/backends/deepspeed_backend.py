"""DeepSpeed ZeRO (stage 2 or 3) backend. `deepspeed` is imported only here, and this module
only when the configuration chooses it.

Runs on CUDA (nccl, bf16) and on CPU (gloo, fp32: how CI exercises ZeRO-2 and ZeRO-3). Started
by `torchrun` it joins the rendezvous torchrun set up; started as a plain process it sets up a
one-process group itself (DeepSpeed would otherwise fall back to MPI discovery and fail on a
missing `mpi4py`). The optimizer is torch's AdamW (`torch_adam`): DeepSpeed's default for
"AdamW" is FusedAdam, which JIT-compiles with nvcc at first use.

Resume uses the engine's own checkpoint (`save_checkpoint`/`load_checkpoint`, called on every
rank: each writes its optimizer partition); the Hugging Face export (`save_policy`: gathered
on every rank under ZeRO-3, written by rank 0) only publishes weights.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import torch
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from paretopo.errors import FailedPrecondition
from paretopo.hf_policy import cache_kwarg
from services.learner.backends.export import export_policy
from services.learner.config import BackendConfig, OptimConfig

#: The engine-checkpoint tag (one per checkpoint directory).
TAG = "engine"


def deepspeed_config(optim: OptimConfig, backend: BackendConfig) -> dict[str, Any]:
    """The DeepSpeed JSON config for our update: torch AdamW, clipping, ZeRO stage, bf16 on GPU.

    Gradient accumulation is driven by the learner (micro-batches of one mini-batch): DeepSpeed
    sees one accumulation step and the learner marks the boundary itself, before the backward
    pass of a mini-batch's last micro-batch.
    """
    cuda = backend.device.startswith("cuda")
    zero: dict[str, Any] = {"stage": backend.zero_stage, "overlap_comm": cuda,
                            "contiguous_gradients": True}
    if backend.zero_stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    return {
        "train_micro_batch_size_per_gpu": optim.micro_batch_size,
        "gradient_accumulation_steps": 1,
        "gradient_clipping": optim.grad_clip,
        # torch_adam: torch.optim.AdamW over DeepSpeed's partitions, no JIT-compiled kernel.
        "optimizer": {"type": "AdamW", "params": {
            "lr": optim.lr, "weight_decay": optim.weight_decay, "betas": [0.9, 0.999],
            "eps": 1e-8, "torch_adam": True}},
        "zero_optimization": zero,
        "bf16": {"enabled": cuda},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
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


def single_process_rendezvous() -> bool:
    """Set RANK=0, WORLD_SIZE=1, LOCAL_RANK=0, MASTER_ADDR/PORT (a free port) when no launcher
    (torchrun) did; returns True when it set them."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        os.environ.setdefault("LOCAL_RANK", os.environ["RANK"])
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        return False
    from paretopo.netutil import free_port

    os.environ.update({"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0",
                       "LOCAL_WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1"})
    if not os.environ.get("MASTER_PORT"):
        os.environ["MASTER_PORT"] = str(free_port())
    return True


def dist_backend(device: str) -> str:
    """The collective backend for `device`: nccl on CUDA, gloo on CPU."""
    return "nccl" if device.startswith("cuda") else "gloo"


def init_process_group(backend: BackendConfig) -> torch.device:
    """Join (or, alone, create) the process group; returns this rank's device."""
    if not backend.device.startswith("cuda"):
        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # no CUDA probing on a CPU run
    deepspeed = import_deepspeed()
    if not backend.device.startswith("cuda"):
        # DeepSpeed's CPU shared-memory all-reduce is a C++ op JIT-compiled at first use
        # (about 100 s, and a compiler in the image); gloo computes the same sums without it.
        importlib.import_module("deepspeed.ops").__compatible_ops__["deepspeed_shm_comm"] = False
    single_process_rendezvous()
    device = torch.device(backend.device)
    if device.type == "cuda":
        local = int(os.environ["LOCAL_RANK"])
        device = torch.device("cuda", local if device.index is None else device.index)
        torch.cuda.set_device(device)
    # Also wraps a group someone else (the loop, under torchrun) already created.
    deepspeed.init_distributed(dist_backend=dist_backend(backend.device),
                               auto_mpi_discovery=False, verbose=False)
    return device


class DeepSpeedBackend:
    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                 optim: OptimConfig, backend: BackendConfig) -> None:
        deepspeed = import_deepspeed()
        init_process_group(backend)
        self.tokenizer = tokenizer
        self.logprob_chunk = backend.logprob_chunk
        self.share_prefixes = backend.prefixes_shared
        self.publish_dtype = getattr(torch, backend.published_dtype)
        self.rank = torch.distributed.get_rank()
        self.engine, self.optimizer, _, _ = deepspeed.initialize(
            model=model, model_parameters=model.parameters(),
            config=deepspeed_config(optim, backend))
        self.device = torch.device(self.engine.device)
        self.config = model.config
        self._cache_kwarg = cache_kwarg(type(model))

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *,
               position_ids: torch.Tensor | None = None, cache: DynamicCache | None = None,
               ) -> torch.Tensor:
        cached = {} if cache is None else {self._cache_kwarg: cache, "use_cache": True}
        return self.engine(input_ids=input_ids, attention_mask=attention_mask,
                           position_ids=position_ids, **cached).logits

    def train(self, mode: bool) -> None:
        self.engine.train(mode)

    def backward(self, loss: torch.Tensor, *, last: bool = True) -> None:
        # The boundary must be set before the last micro-batch's backward: at that backward
        # ZeRO reduces the accumulated gradients into its partitions (ZeRO-2's `step` fails
        # with KeyError: 0 in scaled_global_norm when it was set only before `step`).
        self.engine.set_gradient_accumulation_boundary(last)
        # The learner already weights each micro-batch by its token share.
        self.engine.backward(loss, scale_wrt_gas=False)

    def step(self) -> float:
        self.engine.set_gradient_accumulation_boundary(True)
        self.engine.step()
        norm = self.engine.get_global_grad_norm()
        return float(norm) if norm is not None else 0.0

    def save_policy(self, path: Path, *, dtype: torch.dtype | None = None) -> None:
        """HF export for publishing: under ZeRO-3 every rank takes part in the gather, rank 0
        writes."""
        if self.engine.zero_optimization_stage() == 3:
            state = self.engine._zero3_consolidated_16bit_state_dict()
        else:
            state = None
        if self.rank == 0:
            export_policy(self.engine.module, self.tokenizer, path, dtype or self.publish_dtype,
                          state)

    def save_checkpoint(self, path: Path) -> None:
        """The engine's own checkpoint (weights, optimizer partitions) under `path`; every
        rank calls it."""
        self.engine.save_checkpoint(str(path), tag=TAG, save_latest=False)

    def load_checkpoint(self, path: Path) -> None:
        """Restore `save_checkpoint(path)` (weights and optimizer state) on every rank."""
        loaded, _ = self.engine.load_checkpoint(str(path), tag=TAG, load_optimizer_states=True,
                                                load_lr_scheduler_states=False)
        if loaded is None:
            raise FailedPrecondition(f"no DeepSpeed engine checkpoint under {path}")

    def optimizer_state(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state)
