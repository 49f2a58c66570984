"""The agent loop's rules, on a scripted model and real (unconfigured) tool clients."""

from __future__ import annotations

import asyncio

from scripted import ScriptedEngine

from paretopo.agent_formats import TESTBED, TORL
from paretopo.jobs import SamplingParams, TrajectoryRecord
from services.rollout.agent import AgentLoop
from services.rollout.sampling import derive_seed
from services.rollout.tools import ToolClients

PROMPT = "Tools: <python>code</python>. Q: 2+3?\n"


def run(turns: list[str], fmt=TESTBED, n: int = 2, **sampling) -> list[TrajectoryRecord]:
    engine = ScriptedEngine(PROMPT, turns, call_stops=[c.stop for c in fmt.calls])
    tools = ToolClients(None, None, timeout_s=1.0, search_top_k=1)
    params = SamplingParams(**{"max_new_tokens": 64, "max_completion_tokens": 400, **sampling})
    return asyncio.run(AgentLoop(engine, tools, fmt).run(PROMPT, n, params))


def split_by_mask(engine_tok, t: TrajectoryRecord) -> tuple[str, str]:
    gen = [i for i, m in zip(t.completion_ids, t.loss_mask, strict=True) if m]
    inserted = [i for i, m in zip(t.completion_ids, t.loss_mask, strict=True) if not m]
    return (engine_tok.decode(gen, skip_special_tokens=False),
            engine_tok.decode(inserted, skip_special_tokens=False))


def test_direct_answer():
    trajs = run(["<answer>5</answer>"])
    assert [t.sample_index for t in trajs] == [0, 1]
    for t in trajs:
        assert (t.finish_reason, t.answer, t.n_tool_calls) == ("answer", "5", 0)
        assert t.loss_mask == [1] * len(t.completion_ids) and t.policy_version == 1


def test_tool_block_is_masked_out_and_tokenised_alone():
    trajs = run(["<python>print(5)</python>", "<answer>5</answer>"])
    tok = ScriptedEngine(PROMPT, [""]).tokenizer
    for t in trajs:
        block = "<output>error: python tool not configured</output>"
        assert t.completion_text == f"<python>print(5)</python>{block}<answer>5</answer>"
        assert (t.n_tool_calls, t.n_tool_errors, t.finish_reason) == (1, 1, "answer")
        generated, inserted = split_by_mask(tok, t)
        assert generated == "<python>print(5)</python><answer>5</answer>"
        assert inserted == block
        assert tok.decode(t.completion_ids, skip_special_tokens=False) == t.completion_text
        assert t.prompt_ids == tok(PROMPT, add_special_tokens=False)["input_ids"]


def test_call_without_opener_gets_an_error_and_counts():
    (t,) = run(["print(5)</python>", "<answer>5</answer>"], n=1)
    assert "<output>error: no <python> opened</output>" in t.completion_text
    assert (t.n_tool_calls, t.n_tool_errors) == (1, 1)


def test_empty_call_gets_an_error():
    (t,) = run(["<python>  </python>", "<answer>5</answer>"], n=1)
    assert "<output>error: empty <python> call</output>" in t.completion_text
    assert (t.n_tool_calls, t.n_tool_errors) == (1, 1)


def test_call_beyond_the_limit_ends_the_trajectory_unexecuted():
    (t,) = run(["<search>a</search>", "<search>b</search>", "<answer>x</answer>"], n=1,
               max_tool_calls=1)
    assert t.finish_reason == "max_tool_calls" and t.n_tool_calls == 1
    assert t.completion_text.endswith("<search>b</search>")  # written, trained on, not run
    assert t.loss_mask[-1] == 1


def test_zero_tool_calls_allowed():
    (t,) = run(["<python>1</python>"], n=1, max_tool_calls=0)
    assert (t.finish_reason, t.n_tool_calls) == ("max_tool_calls", 0)


def test_token_budget_cuts_the_tool_block():
    (t,) = run(["<python>print(5)</python>", "<answer>5</answer>"], n=1,
               max_completion_tokens=12)
    assert t.finish_reason == "token_budget" and len(t.completion_ids) == 12
    assert t.loss_mask == [1] * 10 + [0, 0]  # the 10-token call, then 2 of the output block


def test_budget_caps_each_turn():
    engine = ScriptedEngine(PROMPT, ["a" * 50])
    tools = ToolClients(None, None, timeout_s=1.0, search_top_k=1)
    params = SamplingParams(max_new_tokens=64, max_completion_tokens=20)
    (t,) = asyncio.run(AgentLoop(engine, tools, TESTBED).run(PROMPT, 1, params))
    assert engine.calls == [20] and t.finish_reason == "token_budget"


def test_turn_without_stop_ends_with_turn_limit():
    (t,) = run(["a" * 100], n=1, max_new_tokens=30)
    assert t.finish_reason == "turn_limit" and len(t.completion_ids) == 30


def test_unclosed_tag_at_eos_just_ends():
    (t,) = run(["<python>print(<eos>"], n=1)
    assert (t.finish_reason, t.n_tool_calls, t.answer) == ("eos", 0, None)
    assert t.completion_text == "<python>print("
    assert t.completion_ids[-1] == ScriptedEngine(PROMPT, [""]).tokenizer.eos_token_id


def test_torl_fences_and_boxed_answer():
    (t,) = run(["```python\nprint(2)\n```\n```output", "so \\boxed{2}<eos>"], fmt=TORL, n=1)
    assert t.n_tool_calls == 1 and t.finish_reason == "eos" and t.answer == "2"
    assert "```output\nerror: python tool not configured\n```\n" in t.completion_text


def test_seeded_group_gives_each_sample_its_own_seed():
    engine = ScriptedEngine(PROMPT, ["<answer>1</answer>"])
    seen: list[int | None] = []
    original = engine.generate

    async def spy(prompts, sampling, stop, max_new_tokens):
        seen.append(sampling.seed)
        return await original(prompts, sampling, stop, max_new_tokens)

    engine.generate = spy
    tools = ToolClients(None, None, timeout_s=1.0, search_top_k=1)
    asyncio.run(AgentLoop(engine, tools, TESTBED).run(PROMPT, 3, SamplingParams(seed=4)))
    assert len(set(seen)) == 3


def seeds_per_turn(seed: int | None, n: int) -> list[int | None]:
    engine = ScriptedEngine(PROMPT, ["<python>print(1)</python>", "<python>print(2)</python>",
                                     "<answer>1</answer>"])
    seen: list[int | None] = []
    original = engine.generate

    async def spy(prompts, sampling, stop, max_new_tokens):
        seen.append(sampling.seed)
        return await original(prompts, sampling, stop, max_new_tokens)

    engine.generate = spy
    tools = ToolClients(None, None, timeout_s=1.0, search_top_k=1)
    (t,) = asyncio.run(AgentLoop(engine, tools, TESTBED).run(PROMPT, n, SamplingParams(seed=seed)))
    assert t.n_tool_calls == 2 and t.finish_reason == "answer"
    return seen


def test_each_turn_of_a_seeded_trajectory_gets_its_own_reproducible_seed():
    # The engine restarts a seed's stream at every call: one seed for all turns would replay
    # the first turn's random numbers in every later turn.
    seen = seeds_per_turn(4, 1)
    assert len(seen) == 3 and len(set(seen)) == 3
    assert seeds_per_turn(4, 1) == seen
    sample_seed = derive_seed(4, 0)  # sample 0 of a group seeded 4
    assert seen == [derive_seed(sample_seed, turn) for turn in range(3)]
    assert not set(seeds_per_turn(5, 1)) & set(seen)


def test_unseeded_turns_stay_unseeded():
    assert seeds_per_turn(None, 1) == [None, None, None]
