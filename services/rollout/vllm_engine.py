"""The vLLM engine (GPU, production). `vllm` is imported only when this engine is built.

Written against vLLM 0.32.0's offline API: `LLM(model=..., ...)`, `LLM.generate` with
token prompts (`{"prompt_token_ids": [...]}`) and one `SamplingParams` per prompt,
`stop=[...]` with `include_stop_str_in_output=True` (the model wrote the stop string, so the
learner trains on it), and `logprobs=0` with `logprobs_mode="processed_logprobs"` (the
sampled token's log-probability under the distribution it was drawn from, after temperature
and top-k/top-p, as the torch engine reports it). A new policy version is loaded in place,
without restarting the engine: `LLM.collective_rpc("reload_from_dir", args=(path,))` runs
the worker extension's method (`vllm_worker.py`) in every worker, which streams the
checkpoint's safetensors into the model's `load_weights`; the prefix cache is then reset,
since cached KV came from the old weights. Each request's prompts are checked against the
context length, and its `vllm.SamplingParams` built (vLLM validates them then), before it is
batched with others, so one bad request fails alone rather than the whole batch.
tests/integration/rollout/test_vllm_real_interface.py checks all of this against vLLM 0.32.0's
own classes on CPU; only generating and reloading on a GPU are not run there.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from paretopo.hf_policy import load_tokenizer
from paretopo.jobs import SamplingParams
from services.rollout.batching import BatchScheduler, GenerateRequest
from services.rollout.engine import Finish, Generation, check_prompt_lengths
from services.rollout.settings import EngineSettings
from services.rollout.vllm_worker import RELOAD_METHOD, WORKER_EXTENSION


class VllmUnavailable(RuntimeError):
    """`engine: vllm` was configured where the package is not installed."""


def import_vllm() -> Any:
    try:
        import vllm
    except ImportError as err:
        raise VllmUnavailable(
            "engine 'vllm' needs the vllm package (GPU only): pip install -e '.[gpu]', "
            "or set PARETOPO_ROLLOUT_ENGINE=torch") from err
    return vllm


def sampling_kwargs(sampling: SamplingParams, stop: Sequence[str],
                    max_new_tokens: int) -> dict[str, Any]:
    """Our `SamplingParams` as `vllm.SamplingParams` keyword arguments, one to one."""
    return {
        "temperature": sampling.temperature,  # vLLM: 0 is greedy, as ours
        "top_p": sampling.top_p,
        "top_k": sampling.top_k,  # 0 keeps all, as ours (vLLM 0.32 takes -1 only quietly)
        "seed": sampling.seed,
        "max_tokens": max_new_tokens,
        "stop": list(stop),
        "include_stop_str_in_output": True,
        "skip_special_tokens": False,  # tags are special tokens in the testbed vocabulary
        "spaces_between_special_tokens": False,
        "logprobs": 0,  # the sampled token only
    }


def token_prompt(ids: Sequence[int]) -> dict[str, list[int]]:
    """One prompt as vLLM's `TokensPrompt`: token ids, no text to tokenise again."""
    return {"prompt_token_ids": list(ids)}


def finish_of(reason: str | None, stop_reason: object) -> Finish:
    """vLLM's `finish_reason` ("stop" for EOS and stop strings alike, "length") as ours."""
    if reason == "length":
        return "length"
    return "stop" if isinstance(stop_reason, str) else "eos"


def engine_kwargs(settings: EngineSettings) -> dict[str, Any]:
    """`vllm.LLM` keyword arguments for `settings` (besides the model path)."""
    kwargs: dict[str, Any] = {"gpu_memory_utilization": settings.gpu_memory_utilization,
                              "seed": settings.seed or 0,
                              "worker_extension_cls": WORKER_EXTENSION,
                              "logprobs_mode": "processed_logprobs"}
    if settings.max_model_len:
        kwargs["max_model_len"] = settings.max_model_len
    if settings.dtype != "auto":
        kwargs["dtype"] = settings.dtype
    return kwargs


@dataclass
class VllmRequest(GenerateRequest):
    """A request with its `vllm.SamplingParams`, built (and so validated) before batching."""

    params: Any = None


def reload_call(path: str) -> tuple[str, tuple[str]]:
    """The `collective_rpc` method name and arguments that load the weights at `path`: plain
    strings, which vLLM's message encoder sends to its worker processes."""
    return RELOAD_METHOD, (str(path),)


class VllmEngine:
    """`Engine` on vLLM: one `LLM`, batched like the torch engine, weights reloaded in place."""

    def __init__(self, settings: EngineSettings) -> None:
        vllm = import_vllm()
        self._vllm = vllm
        self.settings = settings
        self.llm = vllm.LLM(model=settings.model_path, **engine_kwargs(settings))
        self.context_length = int(self.llm.llm_engine.model_config.max_model_len)
        self.tokenizer = load_tokenizer(settings.model_path)
        self.version = settings.version
        self._lock = threading.Lock()
        self._scheduler = BatchScheduler(self._run_batch, max_rows=settings.max_batch_size,
                                         window_s=settings.batch_window_ms / 1000)

    def load_weights(self, path: str, version: int) -> None:
        method, args = reload_call(path)
        with self._lock:
            self.llm.collective_rpc(method, args=args)
            # Cached KV was computed with the old weights; vLLM answers False when it could
            # not drop it (requests still running), and serving from it would go off-policy.
            if not self.llm.reset_prefix_cache():
                raise RuntimeError(f"vLLM kept its prefix cache after loading {path}")
            self.version = version

    async def generate(self, prompts: Sequence[Sequence[int]], sampling: SamplingParams,
                       stop: Sequence[str], max_new_tokens: int) -> list[Generation]:
        check_prompt_lengths(prompts, self.context_length)
        if not prompts:
            return []
        # Built here, not in the batch: vLLM refuses some values we allow (temperature above
        # 2), and that must fail this request only.
        params = self._vllm.SamplingParams(**sampling_kwargs(sampling, stop, max_new_tokens))
        request = VllmRequest(prompts, sampling, tuple(stop), max_new_tokens, params=params)
        return await self._scheduler.submit(request)

    def _run_batch(self, batch: list[VllmRequest]) -> list[list[Generation]]:
        prompts, params = [], []
        for r in batch:
            for ids in r.prompts:
                prompts.append(token_prompt(ids))
                params.append(r.params)
        with self._lock:
            outputs = self.llm.generate(prompts, params, use_tqdm=False)
        gens = [self._generation(o.outputs[0]) for o in outputs]
        results, i = [], 0
        for r in batch:
            results.append(gens[i: i + len(r.prompts)])
            i += len(r.prompts)
        return results

    @staticmethod
    def _generation(out: Any) -> Generation:
        logprobs = None
        if out.logprobs is not None:
            logprobs = [step[t].logprob for t, step in zip(out.token_ids, out.logprobs,
                                                             strict=True)]
        return Generation(list(out.token_ids), out.text,
                          finish_of(out.finish_reason, out.stop_reason), logprobs)
