"""The update scattered over two torchrun ranks (CPU, gloo) is the one-rank update (issue 18,
item 3): the same loss and pre-clip gradient norm at every optimizer step (the loss is
normalised by the all-reduced token count, times the world size that DeepSpeed averages
over) and the same weights after 4 optimizer steps, at ZeRO-2 and ZeRO-3; and the one-rank
sharded update equals `policy_update` (`ds_train.py`)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_deepspeed_cpu import REPO, _env, _max_diff, _run, _weights

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.slow
NUMBER = r"(-?\d+\.\d{6})"  # ranks' lines may interleave: no \S+ that runs into the next
LINE = re.compile(rf"STEP (\d+) rank (\d+) tokens (\d+) steps (\d+) loss {NUMBER} "
                  rf"grad_norm {NUMBER}")


def _torchrun(nproc: int, policy: Path, stage: int, out: Path) -> dict[tuple[int, int], tuple]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={nproc}", str(HERE / "ranks_train.py"), "--policy", str(policy),
           "--stage", str(stage), "--out", str(out), "--steps", "2"]
    proc = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = {(int(m[1]), int(m[2])): (int(m[3]), int(m[4]), float(m[5]), float(m[6]))
             for m in LINE.finditer(proc.stdout)}
    assert {rank for _, rank in lines} == set(range(nproc)), proc.stdout
    return lines


@pytest.mark.parametrize("stage", [2, 3])
def test_two_ranks_take_the_one_rank_step(stage: int, tiny_policy: Path, tmp_path: Path) -> None:
    one = _torchrun(1, tiny_policy, stage, tmp_path / "one")
    two = _torchrun(2, tiny_policy, stage, tmp_path / "two")
    for step in (1, 2):
        tokens, steps, loss, norm = one[(step, 0)]
        assert steps == 2 and tokens > 0 and norm > 0
        for rank in (0, 1):  # statistics are over all ranks, identical on each
            t2, s2, l2, n2 = two[(step, rank)]
            assert (t2, s2) == (tokens, steps)
            assert l2 == pytest.approx(loss, abs=1e-5)
            assert n2 == pytest.approx(norm, rel=1e-4)
    moved = _max_diff(_weights(tiny_policy), _weights(tmp_path / "one" / "final"))
    assert moved > 1e-3
    assert _max_diff(_weights(tmp_path / "one" / "final"),
                     _weights(tmp_path / "two" / "final")) < 1e-5
    if stage == 3:  # one rank through `ranks` is the plain `policy_update` run
        _run([sys.executable, str(HERE / "ds_train.py"), "--policy", str(tiny_policy),
              "--stage", "3", "--out", str(tmp_path / "plain"), "--steps", "2"])
        assert _max_diff(_weights(tmp_path / "one" / "final"),
                         _weights(tmp_path / "plain" / "final")) < 1e-5
