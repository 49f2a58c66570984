"""The paper configurations use the memory options and the micro-batch sizes of
docs/memory.md (issue 18, item 4)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.learner.config import load_run_config

ROOT = Path(__file__).resolve().parents[3]
PAPER = sorted((ROOT / "configs" / "paper").glob("*.yaml"))


def _documented_micro_batches() -> dict[str, int]:
    table = {}
    for line in (ROOT / "docs" / "memory.md").read_text().splitlines():
        match = re.match(r"\| `([\w.-]+)` \| [23] \| [^|]+ \| (\d+) \|", line)
        if match:
            table[match[1]] = int(match[2])
    return table


def test_every_paper_config_is_in_the_memory_table() -> None:
    assert PAPER and set(_documented_micro_batches()) == {p.stem for p in PAPER}


@pytest.mark.parametrize("path", PAPER, ids=lambda p: p.stem)
def test_paper_config_uses_the_memory_options(path: Path) -> None:
    cfg = load_run_config(path)
    assert cfg.backend.gradient_checkpointing is True
    assert cfg.backend.logprob_chunk > 0
    assert cfg.backend.published_dtype == "bfloat16"
    assert cfg.optim.micro_batch_size == _documented_micro_batches()[path.stem]
