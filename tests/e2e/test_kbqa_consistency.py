"""One kbqa checkpoint, greedy: the learner's validation through the local stack (Redis, a
rollout worker, the search service) and `paretopo testbed eval` (its own search service)
give the same EM and #Tool on the same prompts.

They did not: the worker returned 3 passages per search where the warm start (and the
testbed's own evaluation) read 1, so the same checkpoint scored EM 0.35 in one and 0.10 in
the other (issue 17). Now a job carries its task's search depth and both paths run the same
agent loop, engine, tools and rollout limits.
"""

from __future__ import annotations

import asyncio
import json
from typing import ClassVar

import pytest
from typer.testing import CliRunner

from paretopo.app.cli import app
from paretopo.app.demo import CONFIGS
from paretopo.app.stack import LocalStack, StackConfig
from paretopo.testbed.config import SftConfig
from paretopo.testbed.sft import train_sft
from services.learner.config import RunConfig, load_run_config
from services.learner.loop import Learner

pytestmark = pytest.mark.slow
PROMPTS = 16

# A quick warm start on ideal demonstrations only: it searches (once or twice) where a
# search is needed, so the passages it reads decide its answers.
TINY_KBQA = {
    "task": "kbqa", "seed": 0, "threads": 1,
    "demos": {"n_demos": 1500, "n_items": 800,
              "mix": {0: {"minimal": 1.0}, 1: {"minimal": 1.0}, 2: {"minimal": 1.0}}},
    "optim": {"lr": 2e-3, "batch_size": 16, "warmup_steps": 20, "skills_steps": 0,
              "max_steps": 900},
    "model": {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 2},
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("kbqa") / "warm"
    train_sft(SftConfig.model_validate({**TINY_KBQA, "out_dir": str(out)}), progress=False)
    return out


class _Recording(Learner):
    """The learner, keeping the validation's groups (to compare answer by answer)."""

    groups: ClassVar[list] = []

    async def _score(self, groups):
        type(self).groups = list(groups)
        return await super()._score(groups)


def _learner_validation(stack_state, checkpoint, tmp_path) -> tuple[dict[str, float], dict]:
    raw = load_run_config(CONFIGS / "runs" / "kbqa_paretopo.yaml").model_dump(mode="json")
    raw.update(run_id="kbqa-consistency", model_path=str(checkpoint),
               output_dir=str(tmp_path / "run"))
    raw["eval"].update(prompts=PROMPTS, samples=1, temperature=0.0, sampling=None)
    raw["services"].update(redis_url=stack_state.redis_url, archive=stack_state.archive_grpc,
                           archive_token=stack_state.write_token, metrics_port=None)
    config = RunConfig.model_validate(raw)

    async def validate() -> dict[str, float]:
        learner = _Recording(config)
        try:
            await learner.open()
            return await learner.validate()
        finally:
            await learner.close()

    summary = asyncio.run(validate())
    answers = {g.prompt_id: [t.answer for t in g.trajectories] for g in _Recording.groups}
    texts = {g.prompt_id: [t.completion_text for t in g.trajectories] for g in _Recording.groups}
    return summary, {"answers": answers, "texts": texts}


def test_learner_validation_and_testbed_eval_agree(checkpoint, tmp_path) -> None:
    stack = LocalStack(StackConfig(
        home=tmp_path / "stack", archive_grpc_port=0, archive_http_port=0, executor_port=0,
        search_port=0, rollout_http_port=0, world_seed=0))
    state = stack.start()
    try:
        validation, trajectories = _learner_validation(state, checkpoint, tmp_path)
    finally:
        stack.stop()
    result = CliRunner().invoke(app, [
        "testbed", "eval", str(checkpoint), "--task", "kbqa", "--n", str(PROMPTS),
        "--samples", "1", "--temperature", "0", "--out", str(tmp_path / "eval")])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{\n"):])
    assert validation["tool_calls"] > 0  # it searched: the passages it read mattered
    assert report["em"] == pytest.approx(validation["em"])
    assert report["mean_calls"] == pytest.approx(validation["tool_calls"])
    for level, numbers in report["by_difficulty"].items():
        assert numbers["em"] == pytest.approx(validation[f"em/{level}"])
    # the worker returned one passage per search, as the warm start learned to read
    texts = [t for ts in trajectories["texts"].values() for t in ts]
    assert any("Doc 1(" in t for t in texts), texts[:3]  # searches found passages
    assert not any("Doc 2(" in t for t in texts)
    # answer by answer: the same passages were read, the same text was generated
    items = json.loads((tmp_path / "eval" / "report.json").read_text())["items"]
    assert {i["id"]: i["answers"] for i in items} == trajectories["answers"]
