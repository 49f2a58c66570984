"""A dependency restart is not the end of the run: the archive or Redis is killed (SIGKILL)
and started again on the same port a few seconds later while the learner trains; the learner
retries, rides it out and finishes. An outage longer than the budget stops the run with one
clear error and a checkpoint to resume from."""

from __future__ import annotations

import asyncio
import time

import pytest
from learner_stack import start_stack

from paretopo.errors import Unavailable
from services.learner import checkpoint
from services.learner.config import RunConfig
from services.learner.loop import Learner

pytestmark = pytest.mark.slow


@pytest.fixture
def own_stack(tmp_path):
    stack = start_stack(tmp_path / "logs")
    try:
        yield stack
    finally:
        stack.stop()


async def _when_step(learner: Learner, step: int, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while getattr(getattr(learner, "state", None), "step", 0) < step:
        assert time.monotonic() < deadline, "the learner never reached the step"
        await asyncio.sleep(0.05)


def _restart_archive(stack, down_s: float) -> None:
    stack.archive.kill()
    time.sleep(down_s)
    stack.archive.start()


def _restart_redis(stack, down_s: float) -> None:
    stack.redis.kill()
    time.sleep(down_s)
    stack.redis.start()


@pytest.mark.parametrize("restart", [_restart_archive, _restart_redis],
                         ids=["archive", "redis"])
def test_the_learner_rides_out_a_restart(own_stack, tiny_policy, tmp_path, restart) -> None:
    config = RunConfig.model_validate(own_stack.run_config(
        tmp_path, tiny_policy, run_id="outage", budget={"max_steps": 4},
        services={"outage_budget_s": 60}))

    async def scenario() -> tuple[Learner, object]:
        learner = Learner(config)
        running = asyncio.create_task(learner.run())
        await _when_step(learner, 1)
        await asyncio.to_thread(restart, own_stack, 3.0)
        try:
            return learner, await running
        finally:
            await learner.close()

    learner, summary = asyncio.run(scenario())
    assert summary.steps == 4 and summary.stopped_by == "max_steps"
    assert learner.archive_guard.outages + learner.redis_guard.outages >= 1


def test_an_outage_past_the_budget_stops_with_a_checkpoint(own_stack, tiny_policy,
                                                           tmp_path) -> None:
    config = RunConfig.model_validate(own_stack.run_config(
        tmp_path, tiny_policy, run_id="outage-long", budget={"max_steps": 50},
        checkpoint_every=100, services={"outage_budget_s": 2}))

    async def scenario() -> Exception:
        learner = Learner(config)
        running = asyncio.create_task(learner.run())
        await _when_step(learner, 1)
        own_stack.archive.kill()
        try:
            await running
        except Unavailable as exc:
            return exc
        finally:
            await learner.close()
        raise AssertionError("the run did not stop")

    error = asyncio.run(scenario())
    assert "unreachable" in str(error) and "outage budget" in str(error)
    assert "\n" not in str(error)  # one line
    ckpt = checkpoint.latest_checkpoint(config.checkpoint_dir)
    assert ckpt is not None and checkpoint.load_state(ckpt).step >= 1
