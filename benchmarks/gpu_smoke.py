"""GPU smoke test: the torch engine and the learner's backends on one device, in one run.

    python benchmarks/gpu_smoke.py --device cuda --out $OUT/smoke.json      # H200: < 8 min
    python benchmarks/gpu_smoke.py --device cpu --tiny --out smoke.json     # CI: < 1 min

Phases, each timed, each catching its own exception (a failure is recorded with its
traceback and the next phase runs); the JSON at `--out` is rewritten after every phase, so a
run killed at its time limit still reports what it finished:

1. `env`: Python, torch, CUDA, transformers, DeepSpeed versions; the GPU; the KV-cache keyword
   this transformers takes (`paretopo.hf_policy.cache_kwarg`).
2. `model`: a randomly initialised Qwen2.5-0.5B-shaped `Qwen2ForCausalLM` (24 layers, width
   896, 14/2 heads, vocabulary 151,936, tied embeddings) saved in HF format with the testbed
   tokenizer (ids beyond its vocabulary decode to nothing); `--tiny`: `TINY_CONFIG`'s shapes.
3. `cache_vs_recompute`: the engine's KV-cache greedy decode against one full forward pass
   over prompt + generated tokens (teacher forcing, no cache): log-probabilities and argmax
   agreement, in float32 and in the engine's dtype.
4. `engine`: tokens/s at batch 1, 16, 64 (T = 1, top-p 0.95, seeded, stop strings set);
   a weight reload (`TorchEngine.load_weights`) and a seeded request giving the same tokens
   before and after it.
5. `learner_step`: `services.learner.backends` with the torch backend: `recompute_logprobs`
   then `policy_update` on a random batch: tokens/s, peak memory, loss finite, weights moved.
6. `memory_probe`: one `policy_update` at a paper micro-batch shape with that config's
   memory options (`--paper-config`, default ToRL 1.5B: micro-batch 8, 3,072-token
   completions, after a ~384-token prompt; its `backend` options such as gradient
   checkpointing or chunked log-probabilities, on the torch backend); peak memory, or the
   out-of-memory error. `--tiny`: 2 x 128 tokens.
7. `deepspeed`: the same step as 5 with ZeRO-2 (one process, its rendezvous set in the
   environment), then a checkpoint round trip (`save_checkpoint`, one more step,
   `load_checkpoint` gives the saved weights back); "skipped: deepspeed not installed" when it
   cannot be imported. Last because its first use JIT-builds ops (on CPU the shared-memory
   communication op: minutes on 2 cores).

Random weights: speeds and memory are real, the text is noise. vLLM (a 336 MB wheel) and
faiss-gpu are not part of it: they cannot be carried to the lent GPU machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import resource
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

#: Qwen2.5-0.5B's published shapes (config.json of the release).
QWEN25_05B = dict(vocab_size=151936, hidden_size=896, intermediate_size=4864,
                  num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                  max_position_embeddings=32768, rope_theta=1_000_000.0, rms_norm_eps=1e-6,
                  tie_word_embeddings=True)

#: A ToRL prompt's length in Qwen2.5 tokens, roughly (the template and a MATH problem); the
#: micro-batch and the completion length come from the paper config itself.
PAPER_PROMPT = 384
PAPER_CONFIG = REPO / "configs" / "paper" / "torl_qwen2.5-math-1.5b.yaml"


class Smoke:
    """Runs phases in order and keeps the report on disk current after each."""

    def __init__(self, out: Path, args: argparse.Namespace) -> None:
        self.out = out
        self.report: dict[str, Any] = {
            "args": {k: str(v) for k, v in vars(args).items()},
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "phases": {}, "finished": False}
        self.state: dict[str, Any] = {}
        self.write()

    def write(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.report, indent=2, default=str))
        tmp.replace(self.out)  # a reader never sees half a file

    def phase(self, name: str, fn: Callable[[], dict[str, Any]]) -> None:
        start = time.perf_counter()
        print(f"[smoke] {name} ...", flush=True)
        try:
            result = fn()
            failed = [k for k, v in result.get("checks", {}).items() if v is not True]
            status = result.pop("status", None) or (
                f"failed: {', '.join(failed)}" if failed else "ok")
        except Exception as exc:  # one phase's failure must not lose the others
            result = {"error": f"{type(exc).__name__}: {exc}",
                      "traceback": traceback.format_exc()[-4000:]}
            status = "failed"
            if isinstance(exc, torch.OutOfMemoryError):
                result["oom"] = True
        finally:
            _empty_cache()
        result = {"status": status, "seconds": round(time.perf_counter() - start, 2), **result}
        self.report["phases"][name] = result
        self.write()
        print(f"[smoke] {name}: {status} ({result['seconds']} s)", flush=True)


def _empty_cache() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mib(device: torch.device) -> float:
    """Peak device memory since the last reset (CUDA), or the process's peak RSS (CPU, which
    cannot be reset: an upper bound)."""
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# --------------------------------------------------------------------------------- phases


def phase_env(device: torch.device) -> dict[str, Any]:
    import transformers
    from transformers import Qwen2ForCausalLM

    from paretopo.hf_policy import cache_kwarg

    try:
        import deepspeed
        ds_version: str | None = deepspeed.__version__
    except Exception as exc:  # an import that fails for any reason means "not usable here"
        ds_version = None
        ds_error = f"{type(exc).__name__}: {exc}"
    out: dict[str, Any] = {
        "python": platform.python_version(), "torch": torch.__version__,
        "cuda": torch.version.cuda, "transformers": transformers.__version__,
        "deepspeed": ds_version, "cache_kwarg": cache_kwarg(Qwen2ForCausalLM),
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    if ds_version is None:
        out["deepspeed_import_error"] = ds_error
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        out.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                   capability=f"{props.major}.{props.minor}", bf16=torch.cuda.is_bf16_supported())
    out["checks"] = {"device_available": device.type == "cpu" or torch.cuda.is_available()}
    return out


def phase_model(device: torch.device, tiny: bool, workdir: Path,
                state: dict[str, Any]) -> dict[str, Any]:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from paretopo.hf_policy import save_policy
    from paretopo.testbed.model import TINY_CONFIG, n_parameters
    from paretopo.testbed.tokenizer import build_tokenizer

    tok = build_tokenizer()
    shapes = (dict(TINY_CONFIG.model_dump(), vocab_size=len(tok), tie_word_embeddings=True)
              if tiny else QWEN25_05B)
    config = Qwen2Config(**shapes, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    with torch.device(device):  # initialise on the GPU: 0.5 B parameters in seconds
        model = Qwen2ForCausalLM(config)
    # bf16 on disk as a real checkpoint ships (the learner upcasts, the engine loads as is).
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    path = save_policy(model.to(dtype), tok, workdir / "policy")
    state["policy"] = path
    size = sum(f.stat().st_size for f in path.iterdir())
    return {"shapes": shapes, "parameters": n_parameters(model), "saved_dtype": str(dtype),
            "checkpoint_mib": round(size / 2**20, 1),
            "checks": {"saved": (path / "config.json").is_file()}}


def _engine(path: Path, device: torch.device, dtype: str, version: int = 1):
    from services.rollout.settings import EngineSettings
    from services.rollout.torch_engine import TorchEngine

    return TorchEngine(EngineSettings(model_path=str(path), version=version,
                                      device=device.type, dtype=dtype, seed=0,
                                      max_batch_size=64))


def _prompts(engine, n: int, length: int) -> list[list[int]]:
    from paretopo.testbed.prompts import render_prompt

    out = []
    for i in range(n):
        text = render_prompt("calc", f"What is {i} * {i + 7} + {3 * i}?")
        ids = engine.tokenizer(text, add_special_tokens=False)["input_ids"]
        out.append((ids * (length // len(ids) + 1))[:length])
    return out


def phase_cache(device: torch.device, tiny: bool, state: dict[str, Any]) -> dict[str, Any]:
    from paretopo.jobs import SamplingParams

    steps = 16 if tiny else 32
    dtypes = ["float32"] + ([] if device.type == "cpu" else ["bfloat16"])
    out: dict[str, Any] = {"steps": steps, "checks": {}}
    for dtype in dtypes:
        engine = _engine(state["policy"], device, dtype)
        prompts = _prompts(engine, 4, 24 if tiny else 96)
        prompts[1] = prompts[1][:7]  # unequal lengths: left padding in the cached batch
        gens = engine.generate_sync(prompts, SamplingParams(temperature=0.0), [], steps)
        worst, agree, total = 0.0, 0, 0
        with torch.inference_mode():
            for prompt, gen in zip(prompts, gens, strict=True):
                seq = torch.tensor([prompt + gen.token_ids], device=device)
                logits = engine.model(input_ids=seq).logits[0, len(prompt) - 1: -1].float()
                logp = torch.log_softmax(logits, -1)
                ids = torch.tensor(gen.token_ids, device=device)
                ref = logp.gather(1, ids[:, None]).squeeze(1).cpu()
                worst = max(worst, float((ref - torch.tensor(gen.logprobs)).abs().max()))
                # A near-tie may flip argmax between two roundings; count, do not require.
                agree += int((logits.argmax(-1) == ids).sum())
                total += len(gen.token_ids)
        # An ignored cache gives logits of a context-free model: differences of order 1.
        tol = 1e-4 if dtype == "float32" else 0.1
        out[dtype] = {"max_abs_logprob_diff": worst, "argmax_agreement": agree / total,
                      "tolerance": tol}
        out["checks"][f"{dtype}_logprobs_match"] = worst <= tol
        if dtype == "float32":
            out["checks"]["float32_argmax_agrees"] = agree == total
        del engine
        _empty_cache()
    return out


def phase_engine(device: torch.device, tiny: bool, state: dict[str, Any]) -> dict[str, Any]:
    from paretopo.jobs import SamplingParams

    dtype = "float32" if device.type == "cpu" else "bfloat16"
    new_tokens = 16 if tiny else 128
    prompt_len = 32 if tiny else 256
    engine = _engine(state["policy"], device, dtype)
    stops = ["</python>", "</answer>", "</search>"]
    params = SamplingParams(temperature=1.0, top_p=0.95, seed=1234)
    out: dict[str, Any] = {"dtype": dtype, "new_tokens_per_row": new_tokens,
                           "prompt_tokens": prompt_len, "stop": stops, "batches": {}}
    engine.generate_sync(_prompts(engine, 2, prompt_len), params, stops, 4)  # warm-up
    for batch in (1, 16, 64):
        prompts = _prompts(engine, batch, prompt_len)
        _sync(device)
        _reset_peak(device)
        start = time.perf_counter()
        gens = engine.generate_sync(prompts, params, stops, new_tokens)
        _sync(device)
        seconds = time.perf_counter() - start
        n = sum(len(g.token_ids) for g in gens)
        finishes = {f: sum(g.finish == f for g in gens) for f in ("stop", "eos", "length")}
        out["batches"][str(batch)] = {"tokens": n, "seconds": round(seconds, 3),
                                      "tokens_per_s": round(n / seconds, 1),
                                      "finish": finishes, "peak_mib": _peak_mib(device)}
    probe = _prompts(engine, 1, prompt_len)
    before = engine.generate_sync(probe, params, stops, new_tokens)[0].token_ids
    start = time.perf_counter()
    engine.load_weights(str(state["policy"]), 2)
    reload_s = time.perf_counter() - start
    after = engine.generate_sync(probe, params, stops, new_tokens)[0].token_ids
    out["reload"] = {"seconds": round(reload_s, 2), "version": engine.version}
    out["checks"] = {
        "all_batches_generated": all(b["tokens"] > 0 for b in out["batches"].values()),
        "reload_sets_version": engine.version == 2,
        # Same weights, same seed: a reload must not change what a seeded request samples.
        "seeded_tokens_same_after_reload": before == after}
    return out


def _random_batch(vocab: int, rows: int, prompt: int, completion: int, seed: int = 0):
    from services.learner.batch import PolicyBatch

    gen = torch.Generator().manual_seed(seed)
    width = prompt + completion
    ids = torch.randint(3, vocab, (rows, width), generator=gen)
    attn = torch.ones(rows, width, dtype=torch.long)
    mask = torch.zeros(rows, width - 1, dtype=torch.bool)
    mask[:, prompt - 1:] = True  # log-prob j predicts token j+1: the completion's tokens
    advantages = torch.randn(rows, generator=gen)
    return PolicyBatch(ids, attn, mask), advantages


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A few parameter tensors (first, middle, last), copied to CPU float32."""
    named = [(n, p) for n, p in model.named_parameters() if p.numel() > 0]
    picks = {named[0], named[len(named) // 2], named[-1]}
    return {n: p.detach().float().cpu().clone() for n, p in picks}


def _moved(before: dict[str, torch.Tensor], model: torch.nn.Module) -> float:
    now = dict(model.named_parameters())
    return max(float((now[n].detach().float().cpu() - t).abs().max()) for n, t in before.items())


def _update(backend, batch, advantages, micro: int) -> tuple[Any, float, float]:
    from paretopo.config import LossConfig
    from services.learner.backends import policy_update, recompute_logprobs

    device = backend.device
    _sync(device)
    start = time.perf_counter()
    old = recompute_logprobs(backend, batch, micro)
    _sync(device)
    recompute_s = time.perf_counter() - start
    start = time.perf_counter()
    stats = policy_update(backend, batch, old, advantages, LossConfig(), mini_batches=1,
                          micro_batch_size=micro)
    _sync(device)
    return stats, recompute_s, time.perf_counter() - start


def _learner_shape(tiny: bool) -> dict[str, int]:
    return ({"rows": 8, "prompt": 16, "completion": 48, "micro": 4} if tiny
            else {"rows": 16, "prompt": 128, "completion": 896, "micro": 4})


def phase_learner(device: torch.device, tiny: bool, state: dict[str, Any]) -> dict[str, Any]:
    from services.learner.backends import build_backend
    from services.learner.config import BackendConfig, OptimConfig

    shape = _learner_shape(tiny)
    backend = build_backend(state["policy"], OptimConfig(lr=1e-4, micro_batch_size=shape["micro"]),
                            BackendConfig(name="torch", device=str(device),
                                          threads=torch.get_num_threads()))
    model = backend.model
    vocab = int(model.config.vocab_size)
    batch, adv = _random_batch(vocab, shape["rows"], shape["prompt"], shape["completion"])
    before = _snapshot(model)
    _reset_peak(device)
    stats, recompute_s, update_s = _update(backend, batch, adv, shape["micro"])
    tokens = batch.input_ids.numel()
    moved = _moved(before, model)
    out = {"shape": shape, "update_stats": vars(stats) if hasattr(stats, "__dict__") else
           str(stats), "recompute_s": round(recompute_s, 3), "update_s": round(update_s, 3),
           "recompute_tokens_per_s": round(tokens / recompute_s, 1),
           "update_tokens_per_s": round(tokens / update_s, 1),
           "peak_mib": _peak_mib(device), "max_weight_change": moved,
           "param_dtype": str(next(model.parameters()).dtype),
           "checks": {"loss_finite": math.isfinite(stats.loss),
                      "grad_norm_finite": math.isfinite(stats.grad_norm),
                      "weights_changed": moved > 0}}
    del backend, model
    return out


def _one_process_rendezvous() -> None:
    """What `torchrun --nproc_per_node 1` would set: DeepSpeed then needs no MPI discovery."""
    from paretopo.netutil import free_port

    for key, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1",
                       "LOCAL_WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(free_port())}.items():
        os.environ.setdefault(key, value)


def phase_deepspeed(device: torch.device, tiny: bool, workdir: Path,
                    state: dict[str, Any]) -> dict[str, Any]:
    try:
        import deepspeed  # noqa: F401
    except Exception as exc:
        return {"status": "skipped: deepspeed not installed", "import_error": str(exc)}
    from services.learner.backends import build_backend
    from services.learner.config import BackendConfig, OptimConfig

    if device.type == "cpu":
        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # gloo, no CUDA probing
    _one_process_rendezvous()
    shape = _learner_shape(tiny)
    backend = build_backend(state["policy"], OptimConfig(lr=1e-4, micro_batch_size=shape["micro"]),
                            BackendConfig(name="deepspeed", zero_stage=2, device=str(device),
                                          threads=torch.get_num_threads()))
    engine = backend.engine
    vocab = int(engine.module.config.vocab_size)
    batch, adv = _random_batch(vocab, shape["rows"], shape["prompt"], shape["completion"])
    before = _snapshot(engine.module)
    _reset_peak(device)
    stats, recompute_s, update_s = _update(backend, batch, adv, shape["micro"])
    moved = _moved(before, engine.module)
    tokens = batch.input_ids.numel()
    # Round trip through DeepSpeed's own checkpoint (every rank saves its optimizer shard).
    ckpt = workdir / "ds-checkpoint"
    save = getattr(backend, "save_checkpoint", None)
    load = getattr(backend, "load_checkpoint", None)
    if save is not None and load is not None:
        save(ckpt)
    else:
        engine.save_checkpoint(str(ckpt), tag="smoke")
    saved = _snapshot(engine.module)
    batch2, adv2 = _random_batch(vocab, shape["rows"], shape["prompt"], shape["completion"], 1)
    _update(backend, batch2, adv2, shape["micro"])
    drift = _moved(saved, engine.module)
    if save is not None and load is not None:
        load(ckpt)
    else:
        engine.load_checkpoint(str(ckpt), tag="smoke")
    restored = _moved(saved, engine.module)
    return {"zero_stage": 2, "shape": shape, "update_stats": vars(stats),
            "recompute_s": round(recompute_s, 3), "update_s": round(update_s, 3),
            "update_tokens_per_s": round(tokens / update_s, 1), "peak_mib": _peak_mib(device),
            "max_weight_change": moved, "drift_after_second_step": drift,
            "max_diff_after_restore": restored,
            "checks": {"loss_finite": math.isfinite(stats.loss), "weights_changed": moved > 0,
                       "second_step_moved": drift > 0, "restore_exact": restored == 0.0}}


def _paper_settings(path: Path) -> tuple[dict[str, Any], int, int]:
    """The paper config's memory-relevant backend options (those `BackendConfig` knows, less
    name/device/zero_stage), its micro-batch and its completion length."""
    import yaml

    from services.learner.config import BackendConfig

    raw = yaml.safe_load(path.read_text())
    skip = {"name", "device", "zero_stage"}
    backend = {k: v for k, v in (raw.get("backend") or {}).items()
               if k in BackendConfig.model_fields and k not in skip}
    return (backend, int(raw["optim"]["micro_batch_size"]),
            int(raw["sampling"]["max_completion_tokens"]))


def phase_memory(device: torch.device, tiny: bool, paper_config: Path,
                 state: dict[str, Any]) -> dict[str, Any]:
    from services.learner.backends import build_backend
    from services.learner.config import BackendConfig, OptimConfig

    options, micro, completion = _paper_settings(paper_config)
    rows, prompt = micro, PAPER_PROMPT
    if tiny:
        rows, prompt, completion = 2, 32, 96
    backend = build_backend(state["policy"], OptimConfig(lr=1e-6, micro_batch_size=rows),
                            BackendConfig(name="torch", device=str(device),
                                          threads=torch.get_num_threads(), **options))
    vocab = int(backend.model.config.vocab_size)
    batch, adv = _random_batch(vocab, rows, prompt, completion)
    out: dict[str, Any] = {"paper_config": str(paper_config), "backend_options": options,
                           "micro_batch": rows, "tokens_per_row": prompt + completion,
                           "vocab": vocab}
    if device.type == "cuda":
        out["weights_and_optimizer_mib_before"] = round(torch.cuda.memory_allocated() / 2**20, 1)
    _reset_peak(device)
    try:
        stats, _, update_s = _update(backend, batch, adv, rows)
    except torch.OutOfMemoryError as exc:
        out.update(oom=True, error=str(exc).splitlines()[0], peak_mib=_peak_mib(device))
        out["checks"] = {"fits": False}
        return out
    out.update(oom=False, update_s=round(update_s, 2), peak_mib=_peak_mib(device),
               loss=stats.loss)
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory / 2**20
        out["peak_fraction_of_gpu"] = round(out["peak_mib"] / total, 3)
    out["checks"] = {"fits": True, "loss_finite": math.isfinite(stats.loss)}
    return out


#: DeepSpeed last: the slowest and least certain phase (first use JIT-builds its ops) must not
#: eat the time of the others.
PHASES = ("env", "model", "cache_vs_recompute", "engine", "learner_step", "memory_probe",
          "deepspeed")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--tiny", action="store_true", help="TINY_CONFIG shapes (CPU, CI)")
    p.add_argument("--out", type=Path, required=True, help="JSON report, rewritten per phase")
    p.add_argument("--workdir", type=Path, default=None, help="checkpoints (default: a temp dir)")
    p.add_argument("--phases", default=",".join(PHASES),
                   help="comma-separated subset (model is added when another phase needs it)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--paper-config", type=Path, default=PAPER_CONFIG,
                   help="the memory probe's micro-batch, completion length and backend options")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    wanted = set(args.phases.split(","))
    unknown = wanted - set(PHASES)
    if unknown:
        p.error(f"unknown phases {sorted(unknown)}; known: {', '.join(PHASES)}")
    if wanted - {"env"}:
        wanted.add("model")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # float32 checks mean float32
    smoke = Smoke(args.out, args)
    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix="gpu-smoke-")))
        st = smoke.state
        runners: dict[str, Callable[[], dict[str, Any]]] = {
            "env": lambda: phase_env(device),
            "model": lambda: phase_model(device, args.tiny, workdir, st),
            "cache_vs_recompute": lambda: phase_cache(device, args.tiny, st),
            "engine": lambda: phase_engine(device, args.tiny, st),
            "learner_step": lambda: phase_learner(device, args.tiny, st),
            "deepspeed": lambda: phase_deepspeed(device, args.tiny, workdir, st),
            "memory_probe": lambda: phase_memory(device, args.tiny, args.paper_config, st),
        }
        for name in PHASES:
            if name not in wanted:
                continue
            if name != "env" and name != "model" and "policy" not in st:
                smoke.report["phases"][name] = {"status": "failed",
                                                "error": "no model: the model phase failed"}
                smoke.write()
                continue
            smoke.phase(name, runners[name])
    smoke.report["finished"] = True
    smoke.report["total_seconds"] = round(sum(
        ph.get("seconds", 0) for ph in smoke.report["phases"].values()), 1)
    smoke.write()
    failed = [n for n, ph in smoke.report["phases"].items() if ph["status"].startswith("failed")]
    print(f"[smoke] done: {len(smoke.report['phases'])} phases, failed: {failed or 'none'}",
          flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
