"""`ds_train.py`'s run with the update scattered over the ranks of a torchrun group
(`services.learner.ranks`): `torchrun --nproc_per_node N ranks_train.py --policy DIR --stage
2|3 --out DIR --steps K`. Rank 0 alone builds the batches and draws the advantages; the
final weights go to OUT/final."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ds_train

from paretopo.config import LossConfig
from services.learner import ranks
from services.learner.backends import build_backend
from services.learner.config import BackendConfig


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--policy", type=Path, required=True)
    parser.add_argument("--stage", type=int, choices=(2, 3), required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, required=True)
    args = parser.parse_args()
    backend = build_backend(args.policy, ds_train.OPTIM,
                            BackendConfig(name="deepspeed", zero_stage=args.stage, device="cpu"))
    world = dist.get_world_size()
    torch.manual_seed(ds_train.SEED)
    for step in range(1, args.steps + 1):
        shards = None
        if dist.get_rank() == 0:
            shards = ranks.shard_batch(ds_train.batch_of(step), torch.randn(ds_train.ROWS),
                                       ds_train.OPTIM.mini_batches, world)
        stats = ranks.sharded_update(backend, ranks.scatter_shards(shards), LossConfig(),
                                     micro_batch_size=ds_train.OPTIM.micro_batch_size)
        print(f"STEP {step} rank {dist.get_rank()} tokens {stats.tokens} steps "
              f"{stats.optimizer_steps} loss {stats.loss:.6f} grad_norm {stats.grad_norm:.6f}",
              flush=True)
    backend.save_policy(args.out / "final")
    print("DONE", flush=True)
    ranks.shutdown()
    ranks.exit_now(0)  # no interpreter finalisation (see `ranks.exit_now`)
    return 0


if __name__ == "__main__":
    sys.exit(main())
