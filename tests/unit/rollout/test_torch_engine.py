"""The PyTorch engine: KV-cache decoding, stop strings, EOS, batching, limits."""

from __future__ import annotations

import asyncio

import pytest
import torch
from transformers import Qwen2ForCausalLM

from paretopo.hf_policy import cache_kwarg
from paretopo.jobs import SamplingParams
from services.rollout.batching import GenerateRequest
from services.rollout.engine import PromptTooLong
from services.rollout.engine_factory import build_engine
from services.rollout.settings import EngineSettings
from services.rollout.torch_engine import CacheIgnored, TorchEngine

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


SEEDED = SamplingParams(temperature=1.0, top_k=20, top_p=0.95, seed=11)


def test_seeded_sampling_reproduces(engine):
    prompt = [ids(engine, "seed")]
    first = engine.generate_sync(prompt, SEEDED, [], 15)[0]
    again = engine.generate_sync(prompt, SEEDED, [], 15)[0]
    assert first.token_ids == again.token_ids
    assert first.logprobs == again.logprobs


def others(engine: TorchEngine) -> list[GenerateRequest]:
    """Requests of other lengths, seeds and parameters that may share a batch."""
    return [GenerateRequest([ids(engine, "another prompt, longer than the first")],
                            SamplingParams(temperature=1.0), ("</answer>",), 9),
            GenerateRequest([ids(engine, "x"), ids(engine, "Q: 5?")],
                            SamplingParams(temperature=0.8, top_p=0.9, seed=3), (), 20),
            GenerateRequest([ids(engine, "g")], GREEDY, (), 4)]


def test_a_seeded_request_gives_the_same_tokens_alone_and_in_any_batch(engine):
    prompt = ids(engine, "Q: 3+4?\n")
    solo = engine.generate_sync([prompt], SEEDED, [], 20)[0]
    mine = GenerateRequest([prompt], SEEDED, (), 20)
    for batch in ([*others(engine), mine], [mine, *others(engine)],
                  [others(engine)[0], mine, others(engine)[2]]):
        out = engine._run_batch(batch)[batch.index(mine)][0]
        assert out.token_ids == solo.token_ids
        # A padded, batched forward pass rounds differently in the last bits (not the tokens).
        assert out.logprobs == pytest.approx(solo.logprobs, abs=1e-5)


def test_a_seeded_request_gives_the_same_tokens_under_concurrent_submission(engine):
    prompt = ids(engine, "Q: 9-2?\n")
    solo = engine.generate_sync([prompt], SEEDED, [], 20)[0]

    async def crowd():
        mine = [engine.generate([prompt], SEEDED, [], 20) for _ in range(4)]
        noise = [engine.generate(r.prompts, r.sampling, r.stop, r.max_new_tokens)
                 for r in others(engine) * 2]
        got = await asyncio.gather(*mine[:2], *noise, *mine[2:])
        return [g for (g,) in got[:2] + got[-2:]]

    for _ in range(2):
        for gen in asyncio.run(crowd()):
            assert gen.token_ids == solo.token_ids


def test_stopped_rows_leave_the_batch_and_the_others_decode_as_alone(engine):
    """Three of four rows stop after 2 tokens: the later decode steps compute one row, and
    every row gives the tokens it gives alone (the cache was compacted correctly)."""
    prompts = [ids(engine, p) for p in ("Q: 1?\n", "a much longer prompt here", "zz", "Q: 8*8?\n")]
    batch = [GenerateRequest([p], SEEDED, (), n) for p, n in zip(prompts, (2, 2, 2, 24),
                                                                   strict=True)]
    solo = [engine.generate_sync(r.prompts, SEEDED, [], r.max_new_tokens)[0] for r in batch]
    rows_per_forward: list[int] = []
    hook = engine.model.register_forward_pre_hook(
        lambda _m, args, kwargs: rows_per_forward.append(kwargs["input_ids"].shape[0]),
        with_kwargs=True)
    try:
        outs = [out for (out,) in engine._run_batch(batch)]
    finally:
        hook.remove()
    assert [o.token_ids for o in outs] == [s.token_ids for s in solo]
    assert [len(o.token_ids) for o in outs] == [2, 2, 2, 24]
    assert rows_per_forward[:2] == [4, 4] and set(rows_per_forward[2:]) == {1}


def test_different_seeds_and_rows_of_one_request_differ(engine):
    prompt = ids(engine, "Q: 1+2?\n")
    outs = {tuple(engine.generate_sync([prompt], SEEDED.model_copy(update={"seed": s}), [],
                                       20)[0].token_ids) for s in range(4)}
    assert len(outs) == 4
    rows = engine.generate_sync([prompt] * 3, SEEDED, [], 20)
    assert len({tuple(g.token_ids) for g in rows}) == 3
    again = engine.generate_sync([prompt] * 3, SEEDED, [], 20)
    assert [g.token_ids for g in again] == [g.token_ids for g in rows]


class LegacyKeywordQwen2(Qwen2ForCausalLM):
    """Qwen2 with the forward signature of transformers before 5.24: the cache is taken as
    `past_key_values`, and `cache=` disappears into `**kwargs` as it did there."""

    def forward(self, input_ids=None, attention_mask=None, position_ids=None,
                past_key_values=None, inputs_embeds=None, labels=None, use_cache=None,
                logits_to_keep=0, **kwargs):
        kwargs.pop("cache", None)
        parent = {cache_kwarg(Qwen2ForCausalLM): past_key_values}  # whatever this version takes
        return super().forward(input_ids=input_ids, attention_mask=attention_mask,
                               position_ids=position_ids, inputs_embeds=inputs_embeds,
                               labels=labels, use_cache=use_cache,
                               logits_to_keep=logits_to_keep, **parent, **kwargs)


class CacheSwallowingQwen2(Qwen2ForCausalLM):
    """A model that names the keyword but ignores the cache it is given."""

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, cache=None,
                **kwargs):
        return super().forward(input_ids=input_ids, attention_mask=attention_mask,
                               position_ids=position_ids, **kwargs)


@pytest.fixture
def fresh_engine(tiny_policy) -> TorchEngine:
    return TorchEngine(EngineSettings(model_path=str(tiny_policy), version=1, seed=0,
                                      threads=1))


def recompute_logprobs(engine: TorchEngine, prompt: list[int], gen_ids: list[int]) -> list[float]:
    seq = prompt + gen_ids
    with torch.no_grad():
        logp = torch.log_softmax(Qwen2ForCausalLM.forward(
            engine.model, input_ids=torch.tensor([seq])).logits[0], -1)
    return [float(logp[len(prompt) - 1 + i, t]) for i, t in enumerate(gen_ids)]


def test_cache_keyword_is_looked_up_per_model_class():
    assert cache_kwarg(LegacyKeywordQwen2) == "past_key_values"
    assert cache_kwarg(CacheSwallowingQwen2) == "cache"
    assert cache_kwarg(Qwen2ForCausalLM) in ("cache", "past_key_values")

    class NoCache(torch.nn.Module):
        def forward(self, input_ids, **kwargs):
            return input_ids

    with pytest.raises(TypeError, match="neither"):
        cache_kwarg(NoCache)


def test_cached_decode_equals_recompute_with_the_pre_5_24_keyword(fresh_engine):
    fresh_engine.model.__class__ = LegacyKeywordQwen2
    prompts = [ids(fresh_engine, "Q: 2+3?\n"), ids(fresh_engine, "hi")]
    gens = fresh_engine.generate_sync(prompts, GREEDY, [], 12)
    for prompt, gen in zip(prompts, gens, strict=True):
        assert gen.token_ids == recompute_greedy(fresh_engine, prompt, 12)
        assert gen.logprobs == pytest.approx(
            recompute_logprobs(fresh_engine, prompt, gen.token_ids), abs=1e-4)


def test_a_model_that_ignores_the_cache_is_refused(fresh_engine):
    fresh_engine.model.__class__ = CacheSwallowingQwen2
    with pytest.raises(CacheIgnored, match="ignored `cache=`"):
        fresh_engine.generate_sync([ids(fresh_engine, "abc")], GREEDY, [], 5)


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


def test_decode_steps_on_cuda_use_the_math_attention_kernel():
    # The fused SDPA kernels did not repeat a bf16 decode step bit for bit on an H200
    # (BENCHMARKS.md, GPU smoke); CPU keeps its default kernel (the recorded CPU runs).
    from services.rollout.torch_engine import _repeatable_attention

    with _repeatable_attention(torch.device("cuda")):
        assert torch.backends.cuda.math_sdp_enabled()
        assert not torch.backends.cuda.flash_sdp_enabled()
        assert not torch.backends.cuda.mem_efficient_sdp_enabled()
    assert torch.backends.cuda.flash_sdp_enabled()  # restored afterwards
    with _repeatable_attention(torch.device("cpu")):
        assert torch.backends.cuda.flash_sdp_enabled()
