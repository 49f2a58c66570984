"""`torchrun --nproc_per_node 2 -m services.learner` on CPU (gloo, DeepSpeed ZeRO-2) through
the real services (issue 18, item 3): rank 0 alone reads groups and publishes, one version
per step, each group trained once, and the same weights as a one-rank run on the same groups."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from learner_stack import NAMESPACE, REPO, write_config
from safetensors.torch import load_file

from paretopo.policy_store import version_dir
from paretopo.results import LEARNER_GROUP
from paretopo.streams import RolloutKeys
from services.learner.config import load_run_config
from services.learner.metrics import read_log

pytestmark = pytest.mark.slow
RANK_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
            "MASTER_PORT", "GROUP_RANK")
THREE = {"objectives": ["accuracy", "tool_efficiency", "length_efficiency"],
         "stage1": {"initial_weights": [0.5, 0.3, 0.2], "reference_point": [0, 0, 0]}}


def _learner(cmd: list[str], config: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in RANK_ENV}
    env["OMP_NUM_THREADS"] = "1"
    result = subprocess.run([*cmd, "-m", "services.learner", "--config", str(config),
                             "--quiet"], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=420, check=False)
    (config.parent / f"{config.stem}.log").write_text(result.stdout + result.stderr)
    return result


def _config(stack, tiny_policy: Path, tmp: Path, run_id: str, steps: int = 2) -> Path:
    return write_config(tmp / f"{run_id}.yaml", stack.run_config(
        tmp / run_id, tiny_policy, run_id=run_id, budget={"max_steps": steps}, algorithm=THREE,
        eval={"every": 1000, "at_start": False}, checkpoint_every=1,
        optim={"micro_batch_size": 3, "mini_batches": 2, "lr": 1e-3},
        backend={"name": "deepspeed", "zero_stage": 2, "device": "cpu", "threads": 1}))


def test_two_ranks_through_the_services_equal_one_rank(stack, tiny_policy, tmp_path) -> None:
    one = _config(stack, tiny_policy, tmp_path, "ranks1")
    two = _config(stack, tiny_policy, tmp_path, "ranks2")
    result = _learner([sys.executable], one)
    assert result.returncode == 0, result.stderr[-3000:]
    result = _learner([sys.executable, "-m", "torch.distributed.run", "--standalone",
                       "--nproc_per_node=2"], two)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("ended after step 2") == 1  # rank 0 alone runs the loop

    cfg1, cfg2 = load_run_config(one), load_run_config(two)
    log1, log2 = read_log(cfg1.metrics_log), read_log(cfg2.metrics_log)
    assert [r["step"] for r in log2] == [1, 2]
    assert [r["policy_version"] for r in log2] == [1, 2]  # one version per step
    assert [r["groups"] for r in log2] == [2, 2]
    assert sorted(p.name for p in cfg2.policy_root.glob("v*")) == ["v000001", "v000002"]
    client = redis.Redis.from_url(stack.redis.url)
    keys = RolloutKeys(NAMESPACE)
    consumers = client.xinfo_consumers(keys.results("ranks2"), LEARNER_GROUP)
    assert len(consumers) == 1  # only rank 0 reads groups ...
    assert all(c["pending"] == 0 for c in consumers)  # ... and acknowledged each one
    assert client.hget(keys.policy("ranks2"), "version") == b"2"
    # The checkpoint holds every rank's optimizer partition (the engine's own checkpoint).
    engine = cfg2.checkpoint_dir / "step_000002" / "engine" / "engine"
    assert sorted(p.name for p in engine.glob("*optim_states.pt")) == [
        "zero_pp_rank_0_mp_rank_00_optim_states.pt", "zero_pp_rank_1_mp_rank_00_optim_states.pt"]

    # The same groups (seeded sampling of the same v0) give the same step-1 update.
    for a, b in zip(log1, log2, strict=True):
        assert a["tokens"] == b["tokens"] and a["em"] == b["em"]
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4)
    w1 = load_file(version_dir(cfg1.policy_root, 1) / "model.safetensors")
    w2 = load_file(version_dir(cfg2.policy_root, 1) / "model.safetensors")
    assert max(float((w1[k] - w2[k]).abs().max()) for k in w1) < 1e-5

    # Resume under torchrun: every rank restores its engine checkpoint, the run goes on.
    longer = _config(stack, tiny_policy, tmp_path, "ranks2", steps=3)
    result = _learner([sys.executable, "-m", "torch.distributed.run", "--standalone",
                       "--nproc_per_node=2"], longer)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ended after step 3" in result.stdout
    log = read_log(cfg2.metrics_log)
    assert [r["step"] for r in log] == [1, 2, 3]
    assert log[-1]["policy_version"] > log[1]["policy_version"]
    assert log[-1]["tokens"] > 0 and log[-1]["grad_norm"] > 0
