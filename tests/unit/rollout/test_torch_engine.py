"""The PyTorch engine: KV-cache decoding, stop strings, EOS, batching, limits."""

from __future__ import annotations

import asyncio

import pytest
import torch

from paretopo.jobs import SamplingParams
from services.rollout.engine_factory import build_engine
from services.rollout.settings import EngineSettings
from services.rollout.torch_engine import PromptTooLong, TorchEngine

GREEDY = SamplingParams(temperature=0.0)


@pytest.fixture(scope="module")
def engine(tiny_policy) -> TorchEngine:
    engine = build_engine(EngineSettings(model_path=str(tiny_policy), version=3, seed=0,
                                         threads=1, batch_window_ms=20))
    assert isinstance(engine, TorchEngine)
    return engine


def ids(engine: TorchEngine, text: str) -> list[int]:
    return engine.tokenizer(text, add_special_tokens=False)["input_ids"]


def recompute_greedy(engine: TorchEngine, prompt: list[int], n: int) -> list[int]:
    """Reference: a full forward pass over the whole sequence for every new token."""
    seq = list(prompt)
    with torch.no_grad():
        for _ in range(n):
            logits = engine.model(input_ids=torch.tensor([seq])).logits[0, -1]
            seq.append(int(logits.argmax()))
    return seq[len(prompt):]


def test_kv_cache_decode_equals_full_recompute_with_left_padding(engine):
    prompts = [ids(engine, "Q: 2+3?\n"), ids(engine, "hi"), ids(engine, "a much longer prompt")]
    gens = engine.generate_sync(prompts, GREEDY, [], 25)
    for prompt, gen in zip(prompts, gens, strict=True):
        assert gen.finish == "length"
        assert gen.token_ids == recompute_greedy(engine, prompt, 25)
        assert len(gen.logprobs) == 25


def test_logprobs_are_those_of_the_sampled_tokens(engine):
    prompt = ids(engine, "Q: 1+1?\n")
    (gen,) = engine.generate_sync([prompt], SamplingParams(temperature=1.0, seed=5), [], 6)
    seq = prompt + gen.token_ids
    with torch.no_grad():
        logp = torch.log_softmax(engine.model(input_ids=torch.tensor([seq])).logits[0], -1)
    expected = [float(logp[len(prompt) - 1 + i, t]) for i, t in enumerate(gen.token_ids)]
    assert gen.logprobs == pytest.approx(expected, abs=1e-4)


def test_stop_string_cuts_text_and_keeps_its_tokens(engine):
    prompt = ids(engine, "Q: 2+3?\n")
    free = engine.generate_sync([prompt], GREEDY, [], 30)[0]
    # Stop on a string the free-running output contains: two characters from its middle.
    stop = free.text[10:12]
    gen = engine.generate_sync([prompt], GREEDY, [stop], 30)[0]
    assert gen.finish == "stop"
    assert gen.text.endswith(stop) and gen.text.count(stop) == 1
    assert gen.token_ids == free.token_ids[: len(gen.token_ids)]
    assert engine.tokenizer.decode(gen.token_ids, skip_special_tokens=False) == gen.text


def favour(engine: TorchEngine, token_id: int):
    """Patch the output layer so that `token_id` wins every step (undo with the result)."""
    original = engine.model.lm_head.forward
    boost = torch.nn.functional.one_hot(torch.tensor(token_id),
                                        engine.model.config.vocab_size) * 100.0
    engine.model.lm_head.forward = lambda h: original(h) + boost
    return lambda: setattr(engine.model.lm_head, "forward", original)


def test_tag_token_is_a_stop_string(engine):
    tag = "</python>"
    tag_id = engine.tokenizer.convert_tokens_to_ids(tag)
    undo = favour(engine, tag_id)
    try:
        (gen,) = engine.generate_sync([ids(engine, "x")], GREEDY, [tag, "</answer>"], 10)
    finally:
        undo()
    assert (gen.finish, gen.text, gen.token_ids) == ("stop", tag, [tag_id])


def test_eos_ends_a_row_and_stays_out_of_the_text(engine):
    eos = engine.tokenizer.eos_token_id
    undo = favour(engine, eos)
    try:
        (gen,) = engine.generate_sync([ids(engine, "abc")], GREEDY, ["</answer>"], 10)
    finally:
        undo()
    assert (gen.finish, gen.text, gen.token_ids) == ("eos", "", [eos])


def test_concurrent_requests_are_batched_and_match_solo_results(engine):
    prompts = [ids(engine, f"Q: {i}*7?\n") for i in range(6)]
    solo = [engine.generate_sync([p], GREEDY, ["</answer>"], 12)[0] for p in prompts]

    async def together():
        return await asyncio.gather(*(engine.generate([p], GREEDY, ["</answer>"], 12)
                                      for p in prompts))

    batched = [g for (g,) in asyncio.run(together())]
    assert [g.token_ids for g in batched] == [g.token_ids for g in solo]


def test_seeded_sampling_reproduces(engine):
    prompt = [ids(engine, "seed")]
    params = SamplingParams(temperature=1.0, top_k=20, seed=11)
    first = engine.generate_sync(prompt, params, [], 15)[0]
    again = engine.generate_sync(prompt, params, [], 15)[0]
    assert first.token_ids == again.token_ids


def test_prompt_longer_than_the_context_is_refused(engine):
    too_long = [1] * engine.context_length
    with pytest.raises(PromptTooLong, match="model's context is 1024 tokens"):
        asyncio.run(engine.generate([too_long], GREEDY, [], 4))


def test_generation_stops_at_the_context_end(engine):
    near_end = [1] * (engine.context_length - 3)
    (gen,) = engine.generate_sync([near_end], GREEDY, [], 50)
    assert gen.finish == "length" and len(gen.token_ids) == 3


def test_load_weights_sets_the_version(engine, tiny_policy):
    engine.load_weights(str(tiny_policy), 7)
    assert engine.version == 7
    engine.load_weights(str(tiny_policy), 3)
