"""The passage store written in one streaming pass (no list of passages in memory).

Same bytes as `paretopo.corpus.write_store` (JSONL + `offsets.npy`), which needs the whole
list first. Here only the offsets accumulate, 8 bytes a passage (168 MB at 21 M), in an
`array` rather than a Python int per passage.
"""

from __future__ import annotations

import json
import os
from array import array
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from paretopo.corpus import OFFSETS_FILE, PASSAGES_FILE, Passage


def write_store_stream(passages: Iterable[Passage], out_dir: Path, *,
                       progress: Callable[[int], None] | None = None,
                       every: int = 10_000) -> int:
    """Write the store of `passages` into `out_dir`; return how many were written."""
    offsets = array("q", [0])
    with open(out_dir / PASSAGES_FILE, "wb") as fh:
        for p in passages:
            line = json.dumps({"id": p.id, "title": p.title, "text": p.text},
                              ensure_ascii=False).encode() + b"\n"
            fh.write(line)
            offsets.append(offsets[-1] + len(line))
            if progress is not None and len(offsets) % every == 0:
                progress(every)
        fh.flush()
        os.fsync(fh.fileno())
    np.save(out_dir / OFFSETS_FILE, np.frombuffer(offsets, dtype=np.int64))
    if progress is not None:
        progress((len(offsets) - 1) % every)
    return len(offsets) - 1
