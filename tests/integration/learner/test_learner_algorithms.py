"""Every algorithm runs a few training steps end to end: real Redis, the real archive over
gRPC, the real sandboxed executor and a real rollout worker process."""

from __future__ import annotations

import asyncio

import pytest
from learner_stack import NAMESPACE

from paretopo.core.advantages import ALGORITHMS
from paretopo.grpc_util import sync_channel
from paretopo.policy_store import version_dir
from paretopo.v1 import archive_pb2, archive_pb2_grpc
from services.learner.config import RunConfig
from services.learner.loop import train
from services.learner.metrics import read_log

pytestmark = pytest.mark.slow

THREE = {"objectives": ["accuracy", "tool_efficiency", "length_efficiency"],
         "stage1": {"initial_weights": [0.5, 0.3, 0.2], "reference_point": [0.0, 0.0, 0.0]}}


def archive_stub(stack) -> archive_pb2_grpc.ArchiveStub:
    return archive_pb2_grpc.ArchiveStub(sync_channel(stack.archive_target, "paretopo.v1.Archive"))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_algorithm_runs_end_to_end(stack, tiny_policy, tmp_path, algorithm: str) -> None:
    run_id = f"alg-{algorithm.replace('_', '-')}"
    # Three objectives: r_len differs between samples even for an untrained policy, so the
    # weighted and Pareto estimators have groups to train on.
    config = RunConfig.model_validate(stack.run_config(
        tmp_path, tiny_policy, run_id=run_id, budget={"max_steps": 3},
        eval={"every": 2, "at_start": True}, algorithm={"name": algorithm, **THREE}))
    seen = []
    summary = asyncio.run(train(config, on_step=seen.append))

    assert summary.steps == 3 and summary.stopped_by == "max_steps"
    assert [m.step for m in seen] == [1, 2, 3]
    assert all(m.groups == 2 and len(m.objectives) == 3 for m in seen)
    assert [r["step"] for r in read_log(config.metrics_log)] == [1, 2, 3]
    trained = sum(m.groups - m.groups_dropped for m in seen)
    updates = [m for m in seen if m.tokens > 0]
    assert summary.policy_version == len(updates)  # one published version per update
    # The update's signal scale is logged: positive when something was trained, else 0.
    assert all(m.advantage_abs > 0 for m in updates)
    assert all(m.advantage_abs == 0 for m in seen if m.groups_dropped == m.groups)
    if algorithm not in ("grpo", "otc_grpo"):  # these read accuracy only: r_acc is all 0 here
        assert trained > 0 and updates
        assert version_dir(config.policy_root, summary.policy_version).is_dir()
    info = archive_stub(stack).GetRunState(archive_pb2.GetRunStateRequest(run_id=run_id),
                                           timeout=5)
    assert list(info.config.objectives) == THREE["objectives"]
    assert info.state.last_step == 2  # validated at steps 0 and 2
    assert info.state.stage == 2  # stage1_steps = 1: switched after the first step
    assert summary.evaluations[0]["step"] == 0 and summary.evaluations[1]["step"] == 2


def test_validation_samples_the_policy_reproducibly_and_metrics_reach_tensorboard(
        stack, tiny_policy, tmp_path) -> None:
    """k sampled completions per prompt, seeded per (prompt, sample, version): validating
    one policy version twice gives the same numbers, whatever shares the workers' batches;
    the summary has per-difficulty and tool-needing numbers; TensorBoard gets the metrics."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from services.learner.loop import Learner

    config = RunConfig.model_validate(stack.run_config(
        tmp_path, tiny_policy, run_id="val-sampled", budget={"max_steps": 1},
        eval={"every": 1, "prompts": 6, "samples": 3, "at_start": False,
              "sampling": {"temperature": 1.0, "max_new_tokens": 32,
                           "max_completion_tokens": 64, "max_tool_calls": 2}}))

    async def run() -> tuple[dict, dict]:
        learner = Learner(config)
        try:
            await learner.open()
            first = await learner.validate()
            learner.state.step += 1  # the archive takes one report per step; same version
            again = await learner.validate()
            return ({k: v for k, v in first.items() if k != "step"},
                    {k: v for k, v in again.items() if k != "step"})
        finally:
            await learner.close()

    first, again = asyncio.run(run())
    assert first == again
    assert {"em", "tool_calls", "needs_tool/em", "needs_tool/tool_calls"} <= set(first)
    assert any(k.startswith("em/") for k in first)
    summary = asyncio.run(train(config))
    assert summary.steps == 1
    board = EventAccumulator(str(config.tensorboard_dir))
    board.Reload()
    tags = set(board.Tags()["scalars"])
    assert {"train/em", "train/approx_kl", "train/advantage_abs", "validation/em",
            "weights/accuracy"} <= tags


def test_unknown_results_and_other_runs_do_not_mix(stack, tiny_policy, tmp_path) -> None:
    """Two runs on one Redis and one worker: each learner trains only on its own groups."""
    configs = [RunConfig.model_validate(stack.run_config(
        tmp_path / name, tiny_policy, run_id=name, budget={"max_steps": 2})) for name in "ab"]

    async def both():
        return await asyncio.gather(*(train(c) for c in configs))

    summaries = asyncio.run(both())
    assert [s.steps for s in summaries] == [2, 2]
    import redis

    client = redis.Redis.from_url(stack.redis.url)
    for name in "ab":
        consumed = {m.decode() for m in client.smembers(f"{NAMESPACE}:run:{name}:rollout:consumed")}
        assert consumed and all(job.startswith(f"{name}-") for job in consumed)


def test_unreachable_archive_is_an_unavailable_error(stack, tiny_policy, tmp_path) -> None:
    from paretopo.errors import Unavailable
    from paretopo.netutil import free_port

    config = RunConfig.model_validate(stack.run_config(
        tmp_path, tiny_policy, services={"archive": f"127.0.0.1:{free_port()}",
                                         "archive_timeout_s": 2}))
    with pytest.raises(Unavailable, match="cannot reach the archive"):
        asyncio.run(train(config))
