"""A DeepSpeed training run on fixed synthetic batches, for tests/integration/learner/
test_deepspeed_cpu.py: `python ds_train.py --policy DIR --stage 2|3 --out DIR --steps N
[--hang-after K]`.

Each step: batch `step` (deterministic), old log-probs recomputed, advantages drawn from the
global torch RNG (so a resume must restore it), `policy_update` with 2 mini-batches of
micro-batches of 3, then `services.learner.checkpoint.save_checkpoint`. A run with a
checkpoint under OUT/checkpoints resumes from it as the learner does (backend built from its
`policy/`, then `checkpoint.restore`). `--hang-after K` prints `CHECKPOINT K` after step K's
checkpoint and sleeps (the test kills it with SIGKILL). The final weights go to OUT/final
(HF export, gathered under ZeRO-3).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from paretopo.config import LossConfig
from paretopo.jobs import TrajectoryRecord
from services.learner import checkpoint, ranks
from services.learner.backends import build_backend, policy_update, recompute_logprobs
from services.learner.batch import PolicyBatch, collate
from services.learner.config import BackendConfig, OptimConfig

OPTIM = OptimConfig(lr=1e-2, weight_decay=0.01, grad_clip=1.0, mini_batches=2,
                    micro_batch_size=3)
ROWS = 8
SEED = 1234


def trajectories(n: int, seed: int) -> list[TrajectoryRecord]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        p, c = 3 + i % 3, 4 + (i * 2) % 5
        mask = [1] * c
        mask[1] = 0  # a tool-output token inside the completion
        out.append(TrajectoryRecord(
            sample_index=i, prompt_ids=torch.randint(1, 90, (p,), generator=g).tolist(),
            completion_ids=torch.randint(1, 90, (c,), generator=g).tolist(), loss_mask=mask,
            completion_text="", answer=None, finish_reason="eos", policy_version=0))
    return out


def batch_of(step: int) -> PolicyBatch:
    return collate(trajectories(ROWS, seed=step), pad_id=0)


def one_step(backend, step: int) -> None:
    batch = batch_of(step)
    old = recompute_logprobs(backend, batch, OPTIM.micro_batch_size)
    advantages = torch.randn(ROWS)
    policy_update(backend, batch, old, advantages, LossConfig(),
                  mini_batches=OPTIM.mini_batches, micro_batch_size=OPTIM.micro_batch_size)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--policy", type=Path, required=True)
    parser.add_argument("--stage", type=int, choices=(2, 3), required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--hang-after", type=int, default=None)
    args = parser.parse_args()
    root = args.out / "checkpoints"
    ckpt = checkpoint.latest_checkpoint(root)
    backend = build_backend(ckpt / "policy" if ckpt else args.policy, OPTIM,
                            BackendConfig(name="deepspeed", zero_stage=args.stage, device="cpu"))
    print("OPTIMIZER", type(backend.engine.basic_optimizer).__name__, flush=True)
    if ckpt:
        state = checkpoint.restore(ckpt, backend)
    else:
        torch.manual_seed(SEED)
        state = checkpoint.LoopState()
    for step in range(state.step + 1, args.steps + 1):
        one_step(backend, step)
        state.step = step
        checkpoint.save_checkpoint(root, state, backend)
        if step == args.hang_after:
            print(f"CHECKPOINT {step}", flush=True)
            time.sleep(600)
    backend.save_policy(args.out / "final")
    print("DONE", flush=True)
    ranks.shutdown()
    ranks.exit_now(0)  # no interpreter finalisation (see `ranks.exit_now`)
    return 0


if __name__ == "__main__":
    sys.exit(main())
