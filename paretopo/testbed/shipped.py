"""Warm starts shipped with the package: the demo's starting checkpoints, the same weights on
every machine.

A warm start trained here is a function of its seed, its code and its machine: the copy
transition of SFT turns the last bits of another CPU's kernels into another checkpoint, and
on some machines a seed's runs do not learn to copy at all (docs/testbed.md, "Warm-start
seeds"). The demo therefore starts from a shipped checkpoint where one exists; its record
(`testbed_sft.json`) says how and where it was made. `paretopo demo --train-warm-start` and
`paretopo sft` make one on this machine instead.
"""

from __future__ import annotations

from pathlib import Path

from paretopo.testbed.prompts import TaskName
from paretopo.testbed.sft import trained_on_current_items

SHIPPED_DIR = Path(__file__).resolve().parent / "warm_starts"


def shipped_path(task: TaskName | str, seed: int) -> Path:
    """Where the shipped warm start of (`task`, `seed`) lives, if it ships."""
    return SHIPPED_DIR / f"{task}-seed{seed}"


def shipped_warm_start(task: TaskName | str, seed: int) -> Path | None:
    """The shipped warm start of (`task`, `seed`), or None when none ships or the one that
    ships learnt from another version of the task's items."""
    path = shipped_path(task, seed)
    if (path / "model.safetensors").is_file() and trained_on_current_items(path, task):
        return path
    return None
