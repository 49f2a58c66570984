"""A short SFT run lowers the loss and leaves a loadable Hugging Face checkpoint; every
shipped testbed config parses."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from paretopo.hf_policy import load_policy
from paretopo.testbed import calc
from paretopo.testbed.config import SftConfig, load_sft_config
from paretopo.testbed.model import ModelConfig, build_model
from paretopo.testbed.sft import (
    INIT_SEED_STRIDE,
    ThreadCheck,
    build_demos,
    collate,
    curriculum,
    encode_demo,
    init_seed,
    is_ideal,
    made_by_recipe,
    masked_lm_loss,
    shared_prefix_length,
    suffix_logits,
    train_sft,
)
from paretopo.testbed.tasks import items_version
from paretopo.testbed.tokenizer import build_tokenizer

CONFIGS = sorted((Path(__file__).parents[3] / "configs" / "testbed").glob("*.yaml"))


def test_shipped_configs_parse():
    assert {p.name for p in CONFIGS} >= {"sft_calc.yaml", "sft_kbqa.yaml"}
    for path in CONFIGS:
        cfg = load_sft_config(path)
        assert path.stem.endswith(str(cfg.task))
        # a step budget, not a clock: the same warm start whatever the machine's load
        assert cfg.optim.max_minutes is None and cfg.threads in (1, "auto")
        # 3,000 calc steps: the demo (warm start + RL) took 9.5 minutes on the 2-core VM of
        # 2026-12-03, where 4,260 steps took 10.1-11.4; a budget much larger would not fit.
        assert cfg.optim.max_steps <= 5000
        assert cfg.restarts <= 1  # a restart is one more whole run in the demo's budget


def test_learning_rate_depends_on_the_step_alone():
    from paretopo.testbed.sft import _lr_at

    cfg = SftConfig(optim={"lr": 1e-3, "max_steps": 100, "warmup_steps": 10})
    assert _lr_at(0, cfg) == pytest.approx(1e-4)
    assert _lr_at(10, cfg) == pytest.approx(1e-3)
    assert _lr_at(100, cfg) == pytest.approx(1e-4)  # decayed to 10 % at max_steps


def test_unknown_config_keys_are_rejected(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("task: calc\noptim: {learning_rate: 1.0}\n")
    with pytest.raises(ValueError, match="learning_rate"):
        load_sft_config(path)


@pytest.mark.slow
@pytest.mark.parametrize("task", ["calc", "kbqa"])
def test_short_sft_lowers_the_loss(task, tmp_path):
    cfg = SftConfig(
        task=task,
        seed=0,
        out_dir=tmp_path / "ckpt",
        demos={"n_demos": 200, "n_items": 200},
        optim={"batch_size": 8, "max_steps": 40, "warmup_steps": 5, "max_minutes": 4},
        model={
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
        },
    )
    result = train_sft(cfg, progress=False)
    assert result.steps == 40, "the 4-minute cap cut a 40-step run: the machine is overloaded"
    first, last = result.losses[:5], result.losses[-5:]
    print(f"seed 0: loss {sum(first) / 5:.3f} -> {sum(last) / 5:.3f}")
    # From ln(110) ~ 4.7 at random init; 40 steps reach about 2.3. Generous margin: -1 nat.
    assert sum(last) / 5 < sum(first) / 5 - 1.0
    meta = json.loads((tmp_path / "ckpt" / "testbed_sft.json").read_text())
    assert meta["steps"] == 40 and meta["config"]["task"] == task
    assert meta["items_version"] == items_version(task)
    assert meta["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert made_by_recipe(tmp_path / "ckpt", cfg)
    assert made_by_recipe(tmp_path / "ckpt", cfg.model_copy(update={"threads": 2}))
    assert not made_by_recipe(tmp_path / "ckpt", cfg.model_copy(update={"seed": 1}))
    model, tokenizer = load_policy(tmp_path / "ckpt")
    assert model.config.hidden_size == 64
    assert tokenizer.convert_tokens_to_ids("</answer>") != tokenizer.unk_token_id


def _token_weight(logits, labels, tokens_per_batch):
    """Gradient of the loss w.r.t. the logits of row 0's only labelled position."""
    logits = logits.clone().requires_grad_(True)
    masked_lm_loss(logits, labels, tokens_per_batch).backward()
    return logits.grad[0, 0].clone()


def test_a_token_weighs_the_same_in_short_and_long_batches():
    """Length-bucketed batches must not up-weight the tokens of short demonstrations."""
    torch.manual_seed(0)
    vocab = 7
    short_labels = torch.tensor([[-100, 3, -100, -100, -100, -100]])  # one labelled token
    long_labels = torch.tensor([[-100, 3, -100, -100, -100, -100], [-100, 1, 2, 4, 5, 6]])
    logits = torch.randn(2, 6, vocab)
    in_short = _token_weight(logits[:1], short_labels, tokens_per_batch=4.0)
    in_long = _token_weight(logits, long_labels, tokens_per_batch=4.0)
    assert torch.allclose(in_short, in_long)
    # The plain per-batch mean (the bug this guards against) weighs it 6x more when alone.
    mean_short = _token_weight(logits[:1], short_labels, tokens_per_batch=None)
    mean_long = _token_weight(logits, long_labels, tokens_per_batch=None)
    assert torch.allclose(mean_short, 6 * mean_long)


def test_curriculum_draws_ideal_demonstrations_first():
    cfg = SftConfig(task="calc", optim={"focus_steps": 50, "focus": ["hard"], "skills_steps": 100})
    demos = build_demos(cfg.model_copy(update={"demos": cfg.demos.model_copy(
        update={"n_demos": 200, "n_items": 200})}))
    by_id = {item.id: str(item.difficulty) for item in calc.generate("train", 200, seed=cfg.seed)}
    difficulty = [by_id[d.item_id] for d in demos]
    (focus_end, focus), (skills_end, skills), (last_end, everything) = curriculum(
        cfg, demos, difficulty)
    assert (focus_end, skills_end, last_end) == (50, 150, float("inf"))
    assert focus and all(is_ideal(demos[i]) and difficulty[i] == "hard" for i in focus)
    assert set(focus) < set(skills) and all(is_ideal(demos[i]) for i in skills)
    assert len(skills) < len(everything) == len(demos)


def test_shared_prefix_gives_the_loss_and_gradients_of_whole_rows():
    """Running the template's instructions once per batch is an optimisation, not a change."""
    tokenizer = build_tokenizer()
    demos = build_demos(SftConfig(task="calc", demos={"n_demos": 6, "n_items": 50}))
    rows = [encode_demo(d, tokenizer) for d in demos]
    n_prefix = shared_prefix_length(rows)
    assert n_prefix > 30  # the calc template's instructions
    assert all(sum(m[:n_prefix + 1]) == 0 for _, m in rows)  # no label loses its logit

    def loss_and_grads(forward, batch_rows):
        model = build_model(tokenizer, ModelConfig(hidden_size=32, intermediate_size=64,
                                                   num_hidden_layers=2, num_attention_heads=2,
                                                   num_key_value_heads=1), seed=0)
        ids, attn, labels = collate(batch_rows, tokenizer.pad_token_id)
        loss = masked_lm_loss(forward(model, ids, attn), labels, 50.0)
        loss.backward()
        return loss.item(), [p.grad.clone() for p in model.parameters()]

    whole = loss_and_grads(lambda m, i, a: m(input_ids=i, attention_mask=a).logits, rows)
    prefix = torch.tensor(rows[0][0][:n_prefix])
    shared = loss_and_grads(
        lambda m, i, a: suffix_logits(m, prefix, i, a),
        [(ids[n_prefix:], mask[n_prefix:]) for ids, mask in rows],
    )
    assert shared[0] == pytest.approx(whole[0], rel=1e-5)
    for g_shared, g_whole in zip(shared[1], whole[1], strict=True):
        assert torch.allclose(g_shared, g_whole, atol=1e-5, rtol=1e-4)


def test_shared_prefix_stops_before_the_first_label():
    rows = [([5, 6, 7, 8], [0, 0, 1, 1]), ([5, 6, 7, 9], [0, 0, 0, 1])]
    assert shared_prefix_length(rows) == 1  # token 7 of row 0 is a label: its logit is at 1
    assert shared_prefix_length([([5, 6], [0, 1]), ([4, 6], [0, 1])]) == 0


def _tiny_sft(tmp_path, restarts: int) -> SftConfig:
    return SftConfig(
        task="calc", seed=3, out_dir=tmp_path / f"ckpt-{restarts}", restarts=restarts,
        demos={"n_demos": 60, "n_items": 60},
        optim={"batch_size": 4, "max_steps": 12, "warmup_steps": 2, "skills_steps": 4},
        model={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
               "num_attention_heads": 2, "num_key_value_heads": 1},
    )


def test_a_warm_start_that_does_not_copy_is_trained_again_from_another_init(tmp_path):
    """12 steps of a tiny model never copy: with one restart there are two whole runs, the
    first of them the very run made without restarts, and the one nearest to copying is kept."""
    alone = train_sft(_tiny_sft(tmp_path, restarts=0), progress=False)
    result = train_sft(_tiny_sft(tmp_path, restarts=1), progress=False)
    assert [a["init_seed"] for a in alone.attempts] == [3]
    assert [a["init_seed"] for a in result.attempts] == [3, 3 + INIT_SEED_STRIDE]
    assert all(a["steps"] == 12 and not a["copies"] for a in result.attempts)
    assert result.attempts[0] == alone.attempts[0]  # the first run is unchanged by restarts
    nearest = min(result.attempts, key=lambda a: min(a["copy_probe"].values()))
    assert result.init_seed == nearest["init_seed"]
    assert result.probe.loss_by_difficulty == nearest["copy_probe"]
    meta = json.loads((tmp_path / "ckpt-1" / "testbed_sft.json").read_text())
    assert meta["init_seed"] == result.init_seed and meta["attempts"] == result.attempts
    assert meta["steps"] == 12 and not meta["copies"]


def test_init_seeds_of_restarts_differ_from_the_first_run():
    assert init_seed(1, 0) == 1 and init_seed(1, 1) == 1 + INIT_SEED_STRIDE


def test_a_warm_start_is_a_function_of_its_seed(tmp_path):
    """Two runs of one config give the same weights bit for bit, and another seed other
    weights: the step budget, one thread and seeded data make the warm start reproducible."""
    from safetensors.torch import load_file

    def weights(seed: int, out: str) -> dict[str, torch.Tensor]:
        cfg = SftConfig(task="calc", seed=seed, out_dir=tmp_path / out, restarts=0,
                        demos={"n_demos": 64, "n_items": 64},
                        optim={"batch_size": 4, "max_steps": 12, "warmup_steps": 2},
                        model={"hidden_size": 32, "intermediate_size": 64,
                               "num_hidden_layers": 1, "num_attention_heads": 2,
                               "num_key_value_heads": 1})
        train_sft(cfg, progress=False)
        return load_file(tmp_path / out / "model.safetensors")

    first, again, other = weights(0, "a"), weights(0, "b"), weights(1, "c")
    assert first.keys() == again.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def _tiny(tmp_path, out: str, threads) -> SftConfig:
    return SftConfig(task="calc", seed=0, out_dir=tmp_path / out, restarts=0, threads=threads,
                     demos={"n_demos": 64, "n_items": 64},
                     optim={"batch_size": 4, "max_steps": 12, "warmup_steps": 2},
                     model={"hidden_size": 32, "intermediate_size": 64,
                            "num_hidden_layers": 1, "num_attention_heads": 2,
                            "num_key_value_heads": 1})


def test_more_threads_only_when_they_give_the_same_weights_faster():
    same_fast = ThreadCheck(2, True, {1: 10.0, 2: 7.0})
    assert same_fast.chosen == 2
    assert ThreadCheck(2, False, {1: 10.0, 2: 7.0}).chosen == 1  # other weights
    assert ThreadCheck(2, True, {1: 10.0, 2: 9.5}).chosen == 1  # a busy machine


def test_auto_threads_keep_the_one_thread_warm_start(tmp_path, monkeypatch):
    """Whatever the check picks on this machine, the warm start is the one-thread one."""
    from safetensors.torch import load_file

    monkeypatch.setattr("paretopo.testbed.sft.THREAD_CHECK_STEPS", 6)
    train_sft(_tiny(tmp_path, "one", 1), progress=False)
    train_sft(_tiny(tmp_path, "auto", "auto"), progress=False)
    one = load_file(tmp_path / "one" / "model.safetensors")
    auto = load_file(tmp_path / "auto" / "model.safetensors")
    meta = json.loads((tmp_path / "auto" / "testbed_sft.json").read_text())
    check = meta["thread_check"]
    if len(os.sched_getaffinity(0)) > 1:
        assert set(check["seconds"]) == {"1", str(check["threads"])}
        assert meta["threads"] in (1, check["threads"])
        assert meta["threads"] == 1 or check["same_weights"]
    if meta["threads"] == 1 or check["same_weights"]:
        assert all(torch.equal(one[k], auto[k]) for k in one)


def test_auto_is_the_only_word_threads_take():
    with pytest.raises(ValueError, match="threads"):
        SftConfig(threads="all")
    with pytest.raises(ValueError, match="threads"):
        SftConfig(threads=0)
