"""Stands in for `services.learner` under the chart's and compose's torchrun lines: each worker
process writes the rank environment torchrun gave it to $RANK_PROBE_DIR/<rank>.json."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR",
        "MASTER_PORT")

if __name__ == "__main__":
    env = {k: os.environ.get(k) for k in KEYS}
    out = Path(os.environ["RANK_PROBE_DIR"]) / f"{env['RANK']}.json"
    out.write_text(json.dumps({**env, "argv": sys.argv[1:]}))
