"""DeepSpeed backend setup without an engine: the optimizer needs no JIT build, the collective
backend follows the device, and a plain process gets a one-process rendezvous while torchrun's
is left alone (issue 18, item 2 b/c)."""

from __future__ import annotations

import pytest

from services.learner.backends.deepspeed_backend import (
    deepspeed_config,
    dist_backend,
    single_process_rendezvous,
)
from services.learner.config import BackendConfig, OptimConfig

RANK_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
            "MASTER_PORT")


def test_optimizer_is_torch_adamw_not_fused_adam() -> None:
    for device in ("cpu", "cuda"):
        cfg = deepspeed_config(OptimConfig(lr=3e-6, weight_decay=0.1),
                               BackendConfig(name="deepspeed", device=device))
        assert cfg["optimizer"]["type"] == "AdamW"
        assert cfg["optimizer"]["params"]["torch_adam"] is True
        assert cfg["optimizer"]["params"]["lr"] == 3e-6


def test_collectives_gloo_on_cpu_nccl_on_cuda() -> None:
    assert dist_backend("cpu") == "gloo"
    assert dist_backend("cuda") == dist_backend("cuda:1") == "nccl"


def test_plain_process_gets_a_one_process_rendezvous(monkeypatch) -> None:
    for key in RANK_ENV:
        monkeypatch.delenv(key, raising=False)
    import os

    assert single_process_rendezvous() is True
    assert (os.environ["RANK"], os.environ["WORLD_SIZE"], os.environ["LOCAL_RANK"]) == \
        ("0", "1", "0")
    assert os.environ["MASTER_ADDR"] == "127.0.0.1"
    assert 0 < int(os.environ["MASTER_PORT"]) < 65536


@pytest.mark.parametrize("rank", ["0", "3"])
def test_torchrun_rendezvous_is_kept(monkeypatch, rank: str) -> None:
    import os

    env = {"RANK": rank, "WORLD_SIZE": "4", "LOCAL_RANK": rank, "MASTER_ADDR": "10.0.0.7",
           "MASTER_PORT": "29500"}
    for key in RANK_ENV:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert single_process_rendezvous() is False
    assert {k: os.environ[k] for k in env} == env


def test_missing_deepspeed_is_a_clear_error_even_where_it_is_installed(tiny_policy) -> None:
    import subprocess
    import sys

    code = ("import sys; sys.modules['deepspeed'] = None\n"  # what a missing package looks like
            "from paretopo.errors import FailedPrecondition\n"
            "from services.learner.backends import build_backend\n"
            "from services.learner.config import BackendConfig, OptimConfig\n"
            "try:\n"
            f"    build_backend({str(tiny_policy)!r}, OptimConfig(), "
            "BackendConfig(name='deepspeed'))\n"
            "except FailedPrecondition as exc:\n"
            "    assert 'pip install' in str(exc) and 'backend.name' in str(exc), exc\n"
            "    print('REFUSED')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert "REFUSED" in out.stdout
