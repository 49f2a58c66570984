"""vLLM parameter mapping and import guard (vllm is not installed here); worker settings."""

from __future__ import annotations

import importlib
import importlib.util
import json
import subprocess
import sys

import pytest

from paretopo.jobs import SamplingParams
from services.rollout.engine_factory import build_engine
from services.rollout.settings import EngineSettings, RolloutSettings
from services.rollout.vllm_engine import VllmUnavailable, finish_of, sampling_kwargs


def test_sampling_maps_one_to_one():
    params = SamplingParams(temperature=0.7, top_p=0.9, top_k=40, seed=3)
    assert sampling_kwargs(params, ["</python>", "</answer>"], 128) == {
        "temperature": 0.7, "top_p": 0.9, "top_k": 40, "seed": 3, "max_tokens": 128,
        "stop": ["</python>", "</answer>"], "include_stop_str_in_output": True,
        "skip_special_tokens": False, "spaces_between_special_tokens": False, "logprobs": 0}


def test_top_k_zero_means_all_in_vllm_terms():
    assert sampling_kwargs(SamplingParams(), [], 8)["top_k"] == 0  # vLLM 0.32: 0 disables


def test_finish_reasons():
    assert finish_of("length", None) == "length"
    assert finish_of("stop", "</python>") == "stop"
    assert finish_of("stop", None) == "eos"
    assert finish_of("stop", 151643) == "eos"  # stopped on an EOS/stop token id


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_vllm_missing_is_a_clear_error(tiny_policy):
    with pytest.raises(VllmUnavailable, match=r"pip install -e '\.\[gpu\]'"):
        build_engine(EngineSettings(kind="vllm", model_path=str(tiny_policy)))


def test_vllm_is_not_imported_by_the_torch_path():
    code = ("import sys, services.rollout.engine, services.rollout.worker, "
            "services.rollout.torch_engine; print('vllm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_settings_from_env(monkeypatch):
    monkeypatch.setenv("PARETOPO_ROLLOUT_REDIS_URL", "redis://h:1/0")
    monkeypatch.setenv("PARETOPO_ROLLOUT_MAX_ATTEMPTS", "5")
    monkeypatch.setenv("PARETOPO_ROLLOUT_EXECUTOR", "127.0.0.1:7")
    s = RolloutSettings()
    assert (s.redis_url, s.max_attempts, s.executor, s.search) == ("redis://h:1/0", 5,
                                                                   "127.0.0.1:7", None)
    assert s.worker_name.endswith(f"-{__import__('os').getpid()}")
    e = s.engine_settings("/m", 4)
    assert (e.model_path, e.version, e.torch_dtype_name) == ("/m", 4, "float32")


@pytest.mark.parametrize(("args", "message"), [
    ([], "redis_url: Field required"),
    (["--redis-url", "redis://x", "--engine", "tpu"], "engine: Input should be 'torch' or"),
    (["--redis-url", "redis://x", "--claim-idle-ms", "5"], "claim_idle_ms: Input should be"),
])
def test_bad_config_is_one_line(args, message):
    out = subprocess.run([sys.executable, "-m", "services.rollout", *args],
                         capture_output=True, text=True, env={"PATH": "/usr/bin"})
    assert out.returncode == 2
    assert out.stderr.startswith("error: bad rollout configuration:") and message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_unreachable_redis_is_one_line(port):
    out = subprocess.run([sys.executable, "-m", "services.rollout", "--redis-url",
                          f"redis://127.0.0.1:{port}/0", "--http-port", "0"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert out.stderr.startswith(f"error: cannot reach Redis at redis://127.0.0.1:{port}/0")
    assert "Traceback" not in out.stderr


def test_the_reload_is_a_method_name_with_plain_arguments() -> None:
    """vLLM sends `collective_rpc` calls to its worker processes as messages: a function
    is refused there, a method name and strings travel (they survive a JSON round trip)."""
    from services.rollout.vllm_engine import engine_kwargs, reload_call
    from services.rollout.vllm_worker import WeightReloader

    method, args = reload_call("/runs/policy/v000042")
    assert isinstance(method, str) and hasattr(WeightReloader, method)
    assert json.loads(json.dumps([method, list(args)])) == [method, ["/runs/policy/v000042"]]
    kwargs = engine_kwargs(EngineSettings(kind="vllm", model_path="m", max_model_len=4096))
    module, _, cls = kwargs["worker_extension_cls"].rpartition(".")
    assert getattr(importlib.import_module(module), cls) is WeightReloader  # importable by name
    assert kwargs["logprobs_mode"] == "processed_logprobs" and kwargs["max_model_len"] == 4096
    json.dumps(kwargs)  # every engine argument is plain data


def test_the_worker_extension_streams_every_tensor_into_the_model(tiny_policy) -> None:
    from safetensors.torch import load_file

    from services.rollout.vllm_worker import RELOAD_METHOD, WeightReloader

    class Model:  # what the worker's model exposes: load_weights(weights=iterable)
        def __init__(self) -> None:
            self.loaded: dict = {}

        def load_weights(self, weights) -> None:
            self.loaded = dict(weights)

    class Runner:  # vLLM's model runners hand out the unwrapped model by get_model()
        model = Model()

        def get_model(self) -> Model:
            return self.model

    worker = WeightReloader()
    worker.model_runner = Runner()
    getattr(worker, RELOAD_METHOD)(str(tiny_policy))
    expected = load_file(str(tiny_policy / "model.safetensors"))
    assert set(worker.model_runner.model.loaded) == set(expected)
    with pytest.raises(FileNotFoundError, match=r"no \*\.safetensors"):
        getattr(worker, RELOAD_METHOD)(str(tiny_policy / "nothing-here"))


def test_one_overlong_prompt_fails_its_own_request() -> None:
    from services.rollout.engine import PromptTooLong, check_prompt_lengths

    check_prompt_lengths([[1, 2, 3]], context_length=4)
    with pytest.raises(PromptTooLong, match="prompt of 4 tokens"):
        check_prompt_lengths([[1, 2], [1, 2, 3, 4]], context_length=4)
    with pytest.raises(ValueError, match="empty prompt"):
        check_prompt_lengths([[]], context_length=4)
