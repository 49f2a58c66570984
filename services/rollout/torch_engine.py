"""The PyTorch/transformers engine: batched sampling with a KV cache, on CPU or CUDA.

Serves any Hugging Face causal LM checkpoint directory (`paretopo.testbed.model.load_policy`).
Its own decode loop instead of `generate`: per-row sampling parameters and stop strings, the
sampled tokens' log-probabilities, and rows leave the batch's results the moment they stop
(and its computation once a quarter of the batch has stopped: `_PRUNE_FRACTION`).
Prompts are left-padded, with an attention mask and position ids that skip the padding, so a
padded row computes exactly what it would alone. The blocking work runs in a thread
(`BatchScheduler`), one batch at a time; concurrent requests are batched together.

Randomness is per row (`sampling.RowStreams`): a seeded request's rows draw from streams
derived from its seed and the prompt's index in the request alone, so the same seeded request
gives the same tokens alone, in any batch, under any concurrency; unseeded rows draw from the
engine's stream (`EngineSettings.seed`).
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Sequence

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import PreTrainedModel

from paretopo.hf_policy import cache_kwarg, load_policy
from paretopo.jobs import SamplingParams
from services.rollout.batching import BatchScheduler, GenerateRequest
from services.rollout.engine import Finish, Generation, check_prompt_lengths
from services.rollout.kv_cache import in_place_cache
from services.rollout.sampling import RowStreams, derive_seed, sample_next
from services.rollout.settings import EngineSettings
from services.rollout.stopping import StopStrings, tails_with_stop


class CacheIgnored(RuntimeError):
    """The model ran without filling the KV cache it was given (it swallowed the keyword)."""


class TorchEngine:
    """`Engine` on PyTorch. `load_weights` swaps the model between batches, never during one."""

    def __init__(self, settings: EngineSettings) -> None:
        if settings.threads:
            torch.set_num_threads(settings.threads)
        self.settings = settings
        self.device = torch.device(settings.device)
        self._dtype = getattr(torch, settings.torch_dtype_name)
        self._lock = threading.Lock()  # the model is used by one batch or one reload at a time
        self._rng = random.Random(settings.seed)
        self.model: PreTrainedModel
        self.load_weights(settings.model_path, settings.version)
        self._scheduler = BatchScheduler(self._run_batch, max_rows=settings.max_batch_size,
                                         window_s=settings.batch_window_ms / 1000)

    def load_weights(self, path: str, version: int) -> None:
        model, tokenizer = load_policy(path, dtype=self._dtype)
        model.to(self.device)
        with self._lock:
            self.model, self.tokenizer, self.version = model, tokenizer, version
        self.model_path = path

    @property
    def context_length(self) -> int:
        return int(self.model.config.max_position_embeddings)

    @property
    def eos_ids(self) -> frozenset[int]:
        ids = self.model.generation_config.eos_token_id
        ids = [ids] if isinstance(ids, int) else list(ids or [])
        if self.tokenizer.eos_token_id is not None:
            ids.append(self.tokenizer.eos_token_id)
        return frozenset(ids)

    async def generate(self, prompts: Sequence[Sequence[int]], sampling: SamplingParams,
                       stop: Sequence[str], max_new_tokens: int) -> list[Generation]:
        check_prompt_lengths(prompts, self.context_length)
        if not prompts:
            return []
        request = GenerateRequest(prompts, sampling, tuple(stop), max_new_tokens)
        return await self._scheduler.submit(request)

    def generate_sync(self, prompts: Sequence[Sequence[int]], sampling: SamplingParams,
                      stop: Sequence[str], max_new_tokens: int) -> list[Generation]:
        """The same as `generate`, blocking, without the scheduler (benchmarks, scripts)."""
        return self._run_batch([GenerateRequest(prompts, sampling, tuple(stop),
                                                max_new_tokens)])[0]

    def _streams(self, batch: list[GenerateRequest]) -> RowStreams:
        seeds = [None if r.sampling.seed is None else derive_seed(r.sampling.seed, j)
                 for r in batch for j in range(len(r.prompts))]
        return RowStreams(seeds, self._rng)

    def _run_batch(self, batch: list[GenerateRequest]) -> list[list[Generation]]:
        rows = [(r, ids) for r in batch for ids in r.prompts]
        with self._lock, torch.inference_mode():
            outs = _decode(self, rows, self._streams(batch))
        results, i = [], 0
        for request in batch:
            results.append(outs[i: i + len(request.prompts)])
            i += len(request.prompts)
        return results


#: Finished rows leave the batch (its KV cache, mask and sampling parameters are compacted)
#: once they are this share of it: decode cost grows with the rows computed, and compacting
#: copies the cache, so not at every single stop.
_PRUNE_FRACTION = 0.25


def _left_pad(prompts: list[Sequence[int]], pad_id: int, device: torch.device
              ) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(list(p), dtype=torch.long)
        mask[i, width - len(p):] = 1
    return ids.to(device), mask.to(device)


def _decode(engine: TorchEngine, rows: list[tuple[GenerateRequest, Sequence[int]]],
            streams: RowStreams) -> list[Generation]:
    """One batched KV-cache decode loop over every row until each has finished."""
    model, tok, dev = engine.model, engine.tokenizer, engine.device
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    ids, mask = _left_pad([p for _, p in rows], pad, dev)
    limits = [min(r.max_new_tokens, engine.context_length - len(p)) for r, p in rows]
    temp = torch.tensor([r.sampling.temperature for r, _ in rows], device=dev)
    top_k = torch.tensor([r.sampling.top_k for r, _ in rows], device=dev)
    top_p = torch.tensor([r.sampling.top_p for r, _ in rows], device=dev)
    stops = [StopStrings(r.stop) for r, _ in rows]
    eos = engine.eos_ids
    out_ids: list[list[int]] = [[] for _ in rows]
    out_lp: list[list[float]] = [[] for _ in rows]
    finish: list[Finish | None] = [None] * len(rows)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    kwarg = cache_kwarg(type(model))
    cache = in_place_cache(model.config, max(limits))
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                   logits_to_keep=1, **{kwarg: cache}).logits[:, -1]
    if cache.get_seq_length() != ids.shape[1]:
        # Decoding on would feed one token per step to a model that sees no context: wrong
        # logits, no error. Refuse instead (a transformers version whose keyword we misread).
        raise CacheIgnored(f"{type(model).__name__} ignored `{kwarg}=`: the KV cache holds "
                           f"{cache.get_seq_length()} positions after a {ids.shape[1]}-token "
                           "prefill")
    live = list(range(len(rows)))  # the original index of each row still in the batch
    for _ in range(max(limits)):
        uniforms = streams.next()[torch.tensor(live)].to(dev)
        tokens, logps = sample_next(logits, temp, top_k, top_p, uniforms)
        _record(live, tokens.tolist(), logps.tolist(), out_ids, out_lp, finish, limits, eos)
        _stop_at_strings(tok, live, out_ids, finish, stops)
        keep = [k for k, i in enumerate(live) if finish[i] is None]
        if not keep:
            break
        if len(live) - len(keep) >= len(live) * _PRUNE_FRACTION:
            sel = torch.tensor(keep, device=dev)
            live = [live[k] for k in keep]
            mask, positions, tokens = mask[sel], positions[sel], tokens[sel]
            temp, top_k, top_p = temp[sel], top_k[sel], top_p[sel]
            cache.batch_select_indices(sel)
        mask = torch.cat([mask, mask.new_ones((len(live), 1))], dim=1)
        positions = positions[:, -1:] + 1
        with _repeatable_attention(dev):
            logits = model(input_ids=tokens[:, None], attention_mask=mask,
                           position_ids=positions, use_cache=True, **{kwarg: cache}).logits[:, -1]
    return [_generation(tok, out_ids[i], out_lp[i], finish[i] or "length", stops[i], eos)
            for i in range(len(rows))]


def _stop_at_strings(tok, live: list[int], out_ids: list[list[int]],
                     finish: list[Finish | None], stops: list[StopStrings]) -> None:
    running = [i for i in live if finish[i] is None and stops[i].strings]
    if running:
        hits = tails_with_stop(tok, [out_ids[i] for i in running], [stops[i] for i in running])
        for i, hit in zip(running, hits, strict=True):
            if hit:
                finish[i] = "stop"


def _repeatable_attention(device: torch.device) -> contextlib.AbstractContextManager:
    """The attention kernel for one-token decode steps.

    On CUDA the fused SDPA kernels do not repeat bit for bit on these steps (an H200, bf16: the
    same seeded request sampled other tokens from one run to the next; the plain "math" kernel
    repeated exactly, `BENCHMARKS.md`, GPU smoke). For one query token it costs little.
    """
    return sdpa_kernel(SDPBackend.MATH) if device.type == "cuda" else contextlib.nullcontext()


def _record(live: list[int], tokens: list[int], logps: list[float], out_ids: list[list[int]],
            out_lp: list[list[float]], finish: list[Finish | None], limits: list[int],
            eos: frozenset[int]) -> None:
    for i, t, lp in zip(live, tokens, logps, strict=True):
        if finish[i] is not None:  # stopped, still in the batch until the next pruning
            continue
        out_ids[i].append(t)
        out_lp[i].append(lp)
        if t in eos:
            finish[i] = "eos"
        elif len(out_ids[i]) >= limits[i]:
            finish[i] = "length"


def _generation(tok, ids: list[int], logps: list[float], finish: Finish, stops: StopStrings,
                eos: frozenset[int]) -> Generation:
    text = tok.decode([t for t in ids if t not in eos], skip_special_tokens=False)
    text, found = stops.cut(text)
    if finish == "length" and found:  # the last allowed token completed a stop string
        finish = "stop"
    return Generation(ids, text, finish, logps)
