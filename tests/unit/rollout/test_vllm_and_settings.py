"""vLLM parameter mapping and import guard (vllm is not installed here); worker settings."""

from __future__ import annotations

import importlib.util
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
    assert sampling_kwargs(SamplingParams(), [], 8)["top_k"] == -1


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
