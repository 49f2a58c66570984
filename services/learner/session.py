"""The learner's connections and run bookkeeping: Redis, the archive run, weight publishing.

Every failure to reach a dependency or a mismatch with existing state becomes a
`ParetopoError` whose one-line message says what is wrong and what to do.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import grpc
from redis.asyncio import Redis
from redis.exceptions import RedisError

from paretopo.errors import FailedPrecondition, InvalidArgument, Unavailable
from paretopo.policy_store import PolicyPointer, current, point_to, prune_versions, version_dir
from paretopo.policy_store import write_version as store_version
from paretopo.streams import RolloutKeys
from paretopo.v1 import archive_pb2
from services.archive.client import ArchiveClient
from services.learner.backends import Backend
from services.learner.config import RunConfig

# Algorithms whose weights stay at w_0: the archive is told not to move them.
FIXED_WEIGHT_ALGORITHMS = frozenset({"no_dynamic_weighting", "fixed_weight"})


def check_model_path(path: Path) -> None:
    if not (path / "config.json").is_file():
        raise FailedPrecondition(
            f"model_path {path} is not a policy checkpoint (no config.json there); make one "
            f"with: paretopo sft --task calc --out {path}")


async def connect_redis(url: str, timeout_s: float = 5.0) -> Redis:
    redis = Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=None)
    try:
        await redis.ping()
    except (RedisError, OSError) as exc:
        await redis.aclose()
        raise Unavailable(f"cannot reach Redis at {url}: {exc}") from None
    return redis


def archive_run_config(config: RunConfig) -> archive_pb2.RunConfig:
    s1 = config.algorithm.stage1
    return archive_pb2.RunConfig(
        run_id=config.run_id, objectives=config.algorithm.objectives,
        stage1=archive_pb2.Stage1Settings(
            beta=s1.beta, tau=s1.tau, step_size=s1.step_size, weight_floor=s1.weight_floor,
            amplification=s1.amplification, initial_weights=s1.initial_weights,
            reference_point=s1.reference_point, stage1_epochs=s1.stage1_epochs),
        adapt_weights=config.algorithm.name not in FIXED_WEIGHT_ALGORITHMS)


def archive_error(exc: grpc.aio.AioRpcError, target: str, what: str) -> Exception:
    """A domain error for a failed archive call."""
    code = exc.code()
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return Unavailable(f"cannot reach the archive at {target} ({what}): {exc.details()}; "
                           "start it (python -m services.archive) or fix services.archive")
    if code == grpc.StatusCode.ALREADY_EXISTS:
        return FailedPrecondition(
            f"archive run exists with another configuration: {exc.details()}; use a new "
            "run_id or the original configuration")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgument(f"archive refused {what}: {exc.details()}")
    return FailedPrecondition(f"archive call {what} failed ({code.name}): {exc.details()}")


async def open_archive(config: RunConfig) -> tuple[ArchiveClient, archive_pb2.RunInfo]:
    """Connect and create the run (a no-op when it exists with the same configuration)."""
    svc = config.services
    client = ArchiveClient(svc.archive, token=svc.archive_token, timeout_s=svc.archive_timeout_s)
    try:
        info = await client.create_run(archive_run_config(config))
    except grpc.aio.AioRpcError as exc:
        await client.close()
        raise archive_error(exc, svc.archive, "CreateRun") from None
    return client, info


def published_versions(root: Path) -> list[int]:
    return sorted(int(p.name[1:]) for p in root.glob("v[0-9]*") if p.is_dir())


async def publish_start(redis: Redis, keys: RolloutKeys, config: RunConfig, backend: Backend,
                        version: int | None) -> int:
    """Announce the starting policy; returns its version.

    A fresh run (nothing published before) points version 0 at `model_path` itself. Any
    earlier publication (a resume, or a crash before the first checkpoint) is superseded by
    a new version above every one published so far, holding the weights the run continues
    from, so no worker mistakes weights of the lost steps for the new ones.
    """
    try:
        pointer: int | None = (await current(redis, keys, config.run_id)).version
    except FailedPrecondition:
        pointer = None
    known = [v for v in (pointer, version, *published_versions(config.policy_root))
             if v is not None]
    if not known:
        await point_to(redis, keys, config.run_id,
                       PolicyPointer(0, str(config.model_path.resolve())))
        return 0
    new = max(known) + 1
    await publish(redis, keys, config, backend, new)
    return new


async def publish(redis: Redis, keys: RolloutKeys, config: RunConfig, backend: Backend,
                  version: int) -> None:
    """Write `version` atomically, point the run at it, prune old versions."""
    root = config.policy_root
    if version_dir(root, version).exists():  # left by a crashed incarnation: not ours
        shutil.rmtree(version_dir(root, version))
    path = store_version(root, version, backend.save_policy)
    await point_to(redis, keys, config.run_id, PolicyPointer(version, str(path.resolve())))
    prune_versions(root, config.keep_versions)
