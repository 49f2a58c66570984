"""n* under many concurrent writers in separate processes: never rises, ends at the true min."""

from __future__ import annotations

import multiprocessing as mp
import random

import pytest

from tests.integration.archive.conftest import create_run

pytestmark = pytest.mark.slow

PROMPTS = [f"q{i}" for i in range(12)]


def _writer(target: str, seed: int, calls: int, out: mp.Queue) -> None:
    from paretopo.grpc_util import sync_channel
    from paretopo.v1 import archive_pb2, archive_pb2_grpc
    from tests.integration.archive.conftest import AUTH

    stub = archive_pb2_grpc.ArchiveStub(sync_channel(target, "paretopo.v1.Archive"))
    rng = random.Random(seed)
    submitted: dict[str, int] = {}
    seen: dict[str, list[int]] = {p: [] for p in PROMPTS}
    for _ in range(calls):
        batch = []
        for prompt in rng.sample(PROMPTS, k=rng.randint(1, len(PROMPTS))):
            successes = [rng.randint(0, 50) for _ in range(rng.randint(0, 3))]
            if successes:
                submitted[prompt] = min(submitted.get(prompt, 10**9), min(successes))
            batch.append(archive_pb2.PromptCalls(prompt_id=prompt, successful_calls=successes))
        reply = stub.UpdateOptimalCalls(
            archive_pb2.UpdateOptimalCallsRequest(run_id="c", prompts=batch),
            metadata=AUTH, timeout=10)
        for entry, value in zip(batch, reply.optimal_calls, strict=True):
            seen[entry.prompt_id].append(value)
    out.put((submitted, seen))


def test_concurrent_writers_never_raise_nstar(archive):
    create_run(archive.stub(), "c")
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    seeds = [random.randrange(2**32) for _ in range(4)]
    print("writer seeds:", seeds)
    writers = [ctx.Process(target=_writer, args=(archive.grpc_target, s, 60, out))
               for s in seeds]
    for w in writers:
        w.start()
    results = [out.get(timeout=120) for _ in writers]
    for w in writers:
        w.join(timeout=30)
        assert w.exitcode == 0
    true_min: dict[str, int] = {}
    for submitted, seen in results:
        for prompt, value in submitted.items():
            true_min[prompt] = min(true_min.get(prompt, 10**9), value)
        for prompt, values in seen.items():
            known = [v for v in values if v >= 0]
            # a writer's successive reads of one prompt never go up, and once known stay known
            assert known == sorted(known, reverse=True), (prompt, values)
            assert values[len(values) - len(known):] == known
    from tests.integration.archive.test_grpc_api import update_nstar

    final = update_nstar(archive.stub(), "c", [(p, []) for p in PROMPTS])
    assert final == [true_min.get(p, -1) for p in PROMPTS]
