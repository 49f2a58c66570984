"""DeepSpeed ZeRO-2 and ZeRO-3 on CPU (gloo), as CI runs them (issue 18, item 2).

Each run is `ds_train.py` in its own process, started as a plain `python` (no RANK/WORLD_SIZE:
the backend sets up its one-process group instead of DeepSpeed's MPI discovery), with torch's
AdamW (no JIT-compiled FusedAdam), 2 steps of 2 mini-batches of micro-batches of 3 (the
accumulation boundary before the last micro-batch's backward). Its first step equals the
torch backend's; a run killed with SIGKILL after a checkpoint and resumed from the engine's
own checkpoint ends with the very weights of an uninterrupted run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from paretopo.hf_policy import load_policy
from services.learner.backends.torch_backend import TorchBackend

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(HERE))
import ds_train  # noqa: E402

pytestmark = pytest.mark.slow
RANK_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
            "MASTER_PORT", "GROUP_RANK")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in RANK_ENV}
    env["PYTHONPATH"] = str(REPO)
    env["OMP_NUM_THREADS"] = "1"
    return env


def _command(policy: Path, stage: int, out: Path, steps: int, hang_after: int | None = None,
             ) -> list[str]:
    cmd = [sys.executable, str(HERE / "ds_train.py"), "--policy", str(policy), "--stage",
           str(stage), "--out", str(out), "--steps", str(steps)]
    return cmd + (["--hang-after", str(hang_after)] if hang_after else [])


def _run(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "DONE" in proc.stdout
    return proc.stdout


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(path / "model.safetensors")


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def _torch_backend_step(policy: Path, tmp: Path) -> dict[str, torch.Tensor]:
    model, tokenizer = load_policy(policy)
    backend = TorchBackend(model, tokenizer, ds_train.OPTIM)
    torch.manual_seed(ds_train.SEED)  # as ds_train does after building its backend
    ds_train.one_step(backend, 1)
    backend.save_policy(tmp / "torch_step1")
    return _weights(tmp / "torch_step1")


@pytest.fixture(scope="module")
def torch_step1(tiny_policy, tmp_path_factory) -> dict[str, torch.Tensor]:
    return _torch_backend_step(tiny_policy, tmp_path_factory.mktemp("torch"))


@pytest.mark.parametrize("stage", [2, 3])
def test_zero_trains_like_torch_and_resumes_exactly_after_kill_9(
        stage: int, tiny_policy: Path, torch_step1, tmp_path: Path) -> None:
    # An uninterrupted run of 2 steps (4 optimizer steps), plain `python`, torch AdamW.
    straight = tmp_path / "straight"
    out = _run(_command(tiny_policy, stage, straight, steps=2))
    assert "OPTIMIZER AdamW" in out
    initial = _weights(tiny_policy)
    step1 = _weights(straight / "checkpoints" / "step_000001" / "policy")
    final = _weights(straight / "final")
    assert _max_diff(initial, step1) > 1e-3 and _max_diff(step1, final) > 1e-3  # it trains
    # Step 1 is the torch backend's update (same batch, advantages, micro-batches).
    assert _max_diff(step1, torch_step1) < 1e-5

    # The same run killed with SIGKILL right after its step-1 checkpoint, then resumed by
    # the same command: the engine checkpoint gives weights and optimizer state back.
    resumed = tmp_path / "resumed"
    proc = subprocess.Popen(_command(tiny_policy, stage, resumed, steps=2, hang_after=1),
                            cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        for line in proc.stdout:
            if line.startswith("CHECKPOINT 1"):
                break
        else:
            pytest.fail(f"the run ended before its checkpoint (rc {proc.wait()})")
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert (resumed / "checkpoints" / "step_000001" / "engine").is_dir()
    assert not (resumed / "final").exists()
    _run(_command(tiny_policy, stage, resumed, steps=2))
    assert _max_diff(_weights(resumed / "final"), final) == 0.0
