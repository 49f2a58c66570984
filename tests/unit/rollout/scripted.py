"""A scripted stand-in for the *model* (not for Redis, gRPC or the sandbox): an `Engine` that
emits given turn texts, so the agent loop's rules can be tested on exact outputs."""

from __future__ import annotations

from collections.abc import Sequence

from paretopo.jobs import SamplingParams
from paretopo.testbed.tokenizer import build_tokenizer
from services.rollout.engine import Generation

EOS = "<eos>"


class ScriptedEngine:
    """Turn k of every trajectory is `turns[k]`; k is the number of call stop strings the
    context holds after the prompt. A turn ending in `<eos>` finishes with EOS; one ending in
    no stop string finishes with "length"; a turn is cut at `max_new_tokens`."""

    def __init__(self, prompt: str, turns: Sequence[str], *, version: int = 1,
                 call_stops: Sequence[str] = ("</python>", "</search>")) -> None:
        self.tokenizer = build_tokenizer()
        self.version = version
        self.prompt = prompt
        self.turns = list(turns)
        self.call_stops = tuple(call_stops)
        self.calls: list[int] = []  # max_new_tokens of each call

    def load_weights(self, path: str, version: int) -> None:
        self.version = version

    async def generate(self, prompts: Sequence[Sequence[int]], sampling: SamplingParams,
                       stop: Sequence[str], max_new_tokens: int) -> list[Generation]:
        return [self._one(p, stop, max_new_tokens) for p in prompts]

    def _one(self, prompt: Sequence[int], stop: Sequence[str], max_new: int) -> Generation:
        self.calls.append(max_new)
        context = self.tokenizer.decode(list(prompt), skip_special_tokens=False)
        done = context[len(self.prompt):]
        turn = sum(done.count(s) for s in self.call_stops)
        text = self.turns[min(turn, len(self.turns) - 1)]
        ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        if len(ids) > max_new:
            ids = ids[:max_new]
            return Generation(ids, self.tokenizer.decode(ids, skip_special_tokens=False),
                              "length", [0.0] * len(ids))
        if text.endswith(EOS):
            return Generation(ids, text.removesuffix(EOS), "eos", [0.0] * len(ids))
        finish = "stop" if any(text.endswith(s) for s in stop) else "length"
        return Generation(ids, text, finish, [0.0] * len(ids))
