"""Checkpoints of a run: policy, optimizer, RNG states and the loop's state, atomically.

Layout under `root`: `step_000010/` (`policy/` in HF format, `optimizer.pt`, `rng.pt`,
`state.json`) and `LATEST`, the name of the newest complete checkpoint. A checkpoint is
written into a temporary directory, every file fsynced, then renamed into place; `LATEST`
is replaced the same way (tmp + fsync + rename) only after that. A `kill -9` at any moment
therefore leaves either the previous checkpoint or the new one, never a half-written one.

A backend with an engine checkpoint of its own (DeepSpeed: `save_checkpoint`/`load_checkpoint`,
each rank writing its optimizer partition) writes `engine/` instead of `optimizer.pt`, and
resumes from it: weights and optimizer state exactly as they were (at ZeRO-2/3 the optimizer's
`state_dict` is a partition, not something `optimizer.pt` could restore). `policy/` is then
the HF export the backend is built from before `engine/` is loaded over it.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from services.learner.backends import Backend

LATEST = "LATEST"
ENGINE = "engine"


def has_engine_checkpoint(backend: Backend) -> bool:
    """Whether `backend` saves and restores its own state (DeepSpeed)."""
    return callable(getattr(backend, "save_checkpoint", None)) and \
        callable(getattr(backend, "load_checkpoint", None))


class LoopState(BaseModel):
    """Everything the loop needs besides weights and optimizer to continue a run."""

    model_config = ConfigDict(extra="forbid")

    step: int = Field(0, ge=0, description="Training steps completed.")
    stage: int = Field(1, ge=1, le=2)
    policy_version: int = Field(0, ge=0, description="Last published policy version.")
    next_seq: int = Field(0, ge=0, description="Data position: next training prompt number.")
    pending_seqs: list[int] = Field(
        default_factory=list, description="Prompts enqueued but not yet trained on; a resumed "
        "run enqueues them again first.")
    weights: list[float] = Field(default_factory=list, description="Current Stage-1 weights w.")
    rho: float = 0.0
    hypervolume: float = 0.0
    metrics_offset: int = Field(0, ge=0, description="Bytes of the metrics log at this step.")
    elapsed_s: float = Field(0.0, ge=0, description="Training wall time before this point.")


def _fsync_tree(path: Path) -> None:
    for f in path.rglob("*"):
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    _fsync_dir(path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(),
            "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` through a fsynced temporary file and one rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(root: Path, state: LoopState, backend: Backend, *, keep: int = 2) -> Path:
    """Write checkpoint `step_{state.step:06d}` and point `LATEST` at it; keep the newest
    `keep` checkpoints."""
    root.mkdir(parents=True, exist_ok=True)
    name = f"step_{state.step:06d}"
    final = root / name
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        backend.save_policy(tmp / "policy", dtype=torch.float32)  # full precision to resume
        if has_engine_checkpoint(backend):
            backend.save_checkpoint(tmp / ENGINE)  # type: ignore[attr-defined]
        else:
            torch.save(backend.optimizer_state(), tmp / "optimizer.pt")
        torch.save(rng_state(), tmp / "rng.pt")
        (tmp / "state.json").write_text(state.model_dump_json(indent=2))
        _fsync_tree(tmp)
        if final.exists():  # the same step saved before a crash: replace it whole
            shutil.rmtree(final)
        os.rename(tmp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    write_atomic(root / LATEST, name.encode())
    _prune(root, keep)
    return final


def _prune(root: Path, keep: int) -> None:
    done = sorted(p for p in root.glob("step_*") if p.is_dir())
    for old in done[: max(0, len(done) - keep)]:
        shutil.rmtree(old, ignore_errors=True)
    for tmp in root.glob(".step_*"):  # leftovers of a crash during a save
        shutil.rmtree(tmp, ignore_errors=True)


def latest_checkpoint(root: Path) -> Path | None:
    """The newest complete checkpoint directory, None when the run has none."""
    pointer = root / LATEST
    if not pointer.is_file():
        return None
    path = root / pointer.read_text().strip()
    return path if (path / "state.json").is_file() else None


def load_state(path: Path) -> LoopState:
    return LoopState.model_validate_json((path / "state.json").read_text())


def restore(path: Path, backend: Backend) -> LoopState:
    """Load optimizer and RNG states of checkpoint `path` (the policy weights were loaded
    by building the backend from `path / "policy"`; an engine checkpoint restores them again,
    with the optimizer's partitions); returns its loop state."""
    if has_engine_checkpoint(backend):
        backend.load_checkpoint(path / ENGINE)  # type: ignore[attr-defined]
    else:
        backend.load_optimizer_state(torch.load(path / "optimizer.pt", weights_only=False))
    set_rng_state(torch.load(path / "rng.pt", weights_only=False))
    return load_state(path)
