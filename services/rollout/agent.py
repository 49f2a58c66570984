"""The agent loop: generate until a stop string, call the tool, append its output, go on.

All `n_samples` trajectories of a prompt run concurrently (asyncio): while some wait for a
tool, the engine's scheduler batches the others' turns. The rules (also in docs/rollout.md):

- The prompt is tokenised once. Generated tokens are appended as the engine returned them
  (loss mask 1); a tool block is tokenised alone and appended (loss mask 0), so the learner
  sees exactly the ids the policy was conditioned on.
- A turn ends at a stop string of the format, at end of sequence or after `max_new_tokens`.
  Answer stop string → `answer`; end of sequence → `eos` (unclosed tags are left as they are);
  `max_new_tokens` without a stop → `turn_limit`; the completion (tool blocks included) reaching
  `max_completion_tokens` → `token_budget` (a tool block that does not fit is cut to the budget).
- A call stop string: if `max_tool_calls` calls were already executed the trajectory ends with
  `max_tool_calls` (the extra call is not executed). Otherwise it counts as a call; a stop with
  no opener in the same turn, or an empty request, gets an error block (`error: no <python>
  opened`, `error: empty <python> call`) and counts as a tool error; else the tool runs.
- The answer is read from the model's own text only (tool output cannot plant one), with
  `extract_answer`, boxed when the format says so.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from paretopo.agent_formats import CallSyntax, ToolFormat
from paretopo.answers import extract_answer
from paretopo.jobs import FinishReason, SamplingParams, TrajectoryRecord
from services.rollout.engine import Engine, Generation
from services.rollout.sampling import derive_seed
from services.rollout.tools import ToolClients, ToolResult


@dataclass
class _Trajectory:
    ids: list[int] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    text: str = ""  # everything appended, tool blocks included
    model_text: str = ""  # what the model wrote
    n_calls: int = 0
    n_errors: int = 0
    n_unavailable: int = 0  # calls that failed because the tool service was down
    generation_s: float = 0.0
    tool_s: float = 0.0
    turns: int = 0  # generate calls so far
    finish: FinishReason | None = None


class AgentLoop:
    """Roll out one prompt into `n_samples` trajectories with `engine` and `tools`."""

    def __init__(self, engine: Engine, tools: ToolClients, fmt: ToolFormat) -> None:
        self.engine = engine
        self.tools = tools
        self.fmt = fmt

    def encode(self, text: str) -> list[int]:
        return list(self.engine.tokenizer(text, add_special_tokens=False)["input_ids"])

    async def run(self, prompt: str, n_samples: int, sampling: SamplingParams
                  ) -> list[TrajectoryRecord]:
        prompt_ids = self.encode(prompt)
        if not prompt_ids:
            raise ValueError("the prompt tokenises to nothing")
        version = self.engine.version
        done = await asyncio.gather(*(
            self._trajectory(prompt_ids, _sample_params(sampling, i)) for i in range(n_samples)))
        return [self._record(i, prompt_ids, t, version) for i, t in enumerate(done)]

    async def _trajectory(self, prompt_ids: list[int], sampling: SamplingParams) -> _Trajectory:
        traj = _Trajectory()
        while traj.finish is None:
            await self._turn(traj, prompt_ids, sampling)
        return traj

    async def _turn(self, traj: _Trajectory, prompt_ids: list[int],
                    sampling: SamplingParams) -> None:
        room = sampling.max_completion_tokens - len(traj.ids)
        if room <= 0:
            traj.finish = "token_budget"
            return
        start = time.perf_counter()
        turn_sampling = _turn_params(sampling, traj.turns)
        traj.turns += 1
        (gen,) = await self.engine.generate([prompt_ids + traj.ids], turn_sampling,
                                            self.fmt.stop_strings,
                                            min(sampling.max_new_tokens, room))
        traj.generation_s += time.perf_counter() - start
        self._append(traj, gen.token_ids, gen.text, generated=True)
        traj.finish = self._finish_of(traj, gen, sampling)
        if traj.finish is None:
            call = self.fmt.call_closed_by(gen.text)
            assert call is not None  # _finish_of ends every turn that did not close a call
            traj.n_calls += 1
            result = await self._execute(call, gen.text)
            traj.n_errors += result.error
            traj.n_unavailable += result.unavailable
            traj.tool_s += result.seconds
            self._append_tool_block(traj, self.fmt.result_text(call, result.text), sampling)

    def _finish_of(self, traj: _Trajectory, gen: Generation, sampling: SamplingParams
                   ) -> FinishReason | None:
        """Why the trajectory ends after this turn, or None when a tool call is due."""
        if gen.finish == "eos":
            return "eos"
        if gen.finish == "length":
            full = len(traj.ids) >= sampling.max_completion_tokens
            return "token_budget" if full else "turn_limit"
        if self.fmt.answer_stop and gen.text.endswith(self.fmt.answer_stop):
            return "answer"
        if self.fmt.call_closed_by(gen.text) is None:  # a stop string the format does not own
            return "eos"
        if traj.n_calls >= sampling.max_tool_calls:
            return "max_tool_calls"
        return None

    async def _execute(self, call: CallSyntax, turn_text: str) -> ToolResult:
        request = call.request(turn_text)
        if request is None:
            return ToolResult(f"error: no {call.opener} opened", True, 0.0)
        if not request:
            return ToolResult(f"error: empty {call.opener} call", True, 0.0)
        return await self.tools.call(call.tool, request)

    def _append_tool_block(self, traj: _Trajectory, block: str,
                           sampling: SamplingParams) -> None:
        ids = self.encode(block)
        room = sampling.max_completion_tokens - len(traj.ids)
        if len(ids) >= room:
            ids = ids[:room]
            block = self.engine.tokenizer.decode(ids, skip_special_tokens=False)
            traj.finish = "token_budget"
        self._append(traj, ids, block, generated=False)

    @staticmethod
    def _append(traj: _Trajectory, ids: list[int], text: str, *, generated: bool) -> None:
        traj.ids += ids
        traj.mask += [int(generated)] * len(ids)
        traj.text += text
        if generated:
            traj.model_text += text

    def _record(self, index: int, prompt_ids: list[int], traj: _Trajectory,
                version: int) -> TrajectoryRecord:
        assert traj.finish is not None
        return TrajectoryRecord(
            sample_index=index, prompt_ids=prompt_ids, completion_ids=traj.ids,
            loss_mask=traj.mask, completion_text=traj.text,
            answer=extract_answer(traj.model_text, allow_boxed=self.fmt.boxed_answer),
            n_tool_calls=traj.n_calls, n_tool_errors=traj.n_errors,
            n_tool_unavailable=traj.n_unavailable, finish_reason=traj.finish,
            policy_version=version, generation_s=traj.generation_s, tool_s=traj.tool_s)


def _sample_params(sampling: SamplingParams, index: int) -> SamplingParams:
    """Sample `index`'s parameters: a seeded group gets distinct, reproducible seeds."""
    if sampling.seed is None:
        return sampling
    return sampling.model_copy(update={"seed": derive_seed(sampling.seed, index)})


def _turn_params(sampling: SamplingParams, turn: int) -> SamplingParams:
    """A turn's parameters: the sample's seed mixed with the turn index. Every generate call
    restarts the engine's stream for its seed, so with one seed for all turns each turn would
    replay the random numbers of the first, correlating a trajectory's turns."""
    if sampling.seed is None:
        return sampling
    return sampling.model_copy(update={"seed": derive_seed(sampling.seed, turn)})
