"""Versioned policy weights on shared storage, and the run's pointer to the current version.

The learner writes version v into `root/v{v:06d}` through a temporary directory and one
`rename`, so a reader sees either no directory or a complete one, never a half-written file;
then it points the run's Redis hash at it and announces the version on the run's channel.
Rollout workers read the pointer between jobs (and listen on the channel to learn of new
versions early).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis

from paretopo.errors import FailedPrecondition
from paretopo.streams import RolloutKeys


@dataclass(frozen=True)
class PolicyPointer:
    version: int
    path: str


def version_dir(root: str | Path, version: int) -> Path:
    """Directory of one published version."""
    return Path(root) / f"v{version:06d}"


def write_version(root: str | Path, version: int, save: Callable[[Path], None]) -> Path:
    """Call `save(tmp_dir)` and move the result to `version_dir(root, version)` atomically.

    An existing directory for that version is kept (a resumed learner republishing the same
    version writes nothing new).
    """
    final = version_dir(root, version)
    if final.exists():
        return final
    Path(root).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".v{version:06d}-", dir=root))
    try:
        save(tmp)
        for f in tmp.iterdir():  # make the bytes durable before the directory becomes visible
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def prune_versions(root: str | Path, keep: int) -> None:
    """Delete all but the newest `keep` published versions (workers reload between jobs)."""
    versions = sorted(p for p in Path(root).glob("v[0-9]*") if p.is_dir())
    for old in versions[: max(0, len(versions) - keep)]:
        shutil.rmtree(old, ignore_errors=True)


async def point_to(
    redis: Redis, keys: RolloutKeys, run_id: str, pointer: PolicyPointer
) -> None:
    """Make `pointer` the run's current policy and announce it."""
    await redis.hset(keys.policy(run_id), mapping={
        "version": pointer.version, "path": pointer.path,
    })
    await redis.publish(keys.policy_channel(run_id), str(pointer.version))


async def current(redis: Redis, keys: RolloutKeys, run_id: str) -> PolicyPointer:
    """The run's current policy; `FailedPrecondition` when the run has published none."""
    raw = await redis.hgetall(keys.policy(run_id))
    if not raw:
        raise FailedPrecondition(
            f"run {run_id!r} has published no policy yet (key {keys.policy(run_id)} is empty); "
            "start its learner first"
        )
    fields = {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}
    path = fields["path"]
    return PolicyPointer(int(fields["version"]), path.decode() if isinstance(path, bytes) else path)
