"""Warm-start the testbed policy by supervised fine-tuning on mixed-strategy demonstrations.

The loss is the token-level mean cross-entropy over the tokens the policy itself would write
(tool calls and answers); the prompt and the tool outputs are context only, masked out, as in
the RL loss later. Reads top to bottom: data, model, loop, save.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch
from tqdm import tqdm
from transformers import PreTrainedTokenizerBase

from paretopo.testbed import calc, kbqa
from paretopo.testbed.config import SftConfig
from paretopo.testbed.demos import Demo, calc_demo, kbqa_demo, sample_demos
from paretopo.testbed.model import build_model, n_parameters, save_policy
from paretopo.testbed.prompts import TaskName
from paretopo.testbed.splits import Split
from paretopo.testbed.tokenizer import build_tokenizer
from paretopo.testbed.tools import LexicalIndex


@dataclass
class SftResult:
    checkpoint: Path
    steps: int
    losses: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    n_parameters: int = 0


def build_demos(cfg: SftConfig) -> list[Demo]:
    """The warm-start data of `cfg.task`, drawn from the training split only."""
    d = cfg.demos
    if cfg.task is TaskName.CALC:
        items, make = calc.generate(Split.TRAIN, d.n_items, seed=cfg.seed), calc_demo
    else:
        world = kbqa.build_world(cfg.seed)
        items = kbqa.generate(Split.TRAIN, seed=cfg.seed)
        index = LexicalIndex(world.passages())
        make = partial(kbqa_demo, world=world, index=index, top_k=d.search_top_k)
    return sample_demos(
        items, d.n_demos, make, seed=cfg.seed, mix=d.mix, difficulty_weights=d.difficulty_weights
    )


def encode_demo(demo: Demo, tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[int]]:
    """Token ids of prompt + completion + EOS, and the loss mask (1 on generated tokens)."""
    ids = tokenizer(demo.prompt, add_special_tokens=False)["input_ids"]
    mask = [0] * len(ids)
    for segment in demo.segments:
        seg_ids = tokenizer(segment.text, add_special_tokens=False)["input_ids"]
        ids += seg_ids
        mask += [int(segment.generated)] * len(seg_ids)
    return [*ids, tokenizer.eos_token_id], [*mask, 1]  # the policy learns to stop


def _batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar lengths (sorted within windows of 32 batches), to pad less."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = 32 * batch_size
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lengths.__getitem__)
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(
    rows: Sequence[tuple[list[int], list[int]]], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded `input_ids (B, T)`, `attention_mask (B, T)` and `labels (B, T)` (-100 off)."""
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for r, (row_ids, row_mask) in enumerate(rows):
        n = len(row_ids)
        ids[r, :n] = torch.tensor(row_ids)
        attn[r, :n] = 1
        labels[r, :n] = torch.where(torch.tensor(row_mask) == 1, torch.tensor(row_ids), -100)
    return ids, attn, labels


def masked_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over the labelled tokens. logits (B, T, V), labels (B, T)."""
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100
    )


def _lr_at(step: int, cfg: SftConfig) -> float:
    o = cfg.optim
    if step < o.warmup_steps:
        return o.lr * (step + 1) / o.warmup_steps
    progress = (step - o.warmup_steps) / max(1, o.max_steps - o.warmup_steps)
    return o.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def train_sft(cfg: SftConfig, *, progress: bool = True) -> SftResult:
    """Run one warm-start and save the checkpoint (HF format) to `cfg.checkpoint_dir`."""
    start = time.monotonic()
    torch.set_num_threads(cfg.threads)
    rng = random.Random(f"sft:{cfg.seed}")

    # --- data: demonstrations -> (ids, loss mask)
    tokenizer = build_tokenizer()
    rows = [encode_demo(d, tokenizer) for d in build_demos(cfg)]
    lengths = [len(ids) for ids, _ in rows]

    # --- model and optimizer
    model = build_model(tokenizer, cfg.model, seed=cfg.seed)
    model.train()
    optim = torch.optim.AdamW(
        model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay
    )
    result = SftResult(cfg.checkpoint_dir, 0, n_parameters=n_parameters(model))

    # --- loop: stop at max_steps or when the wall-clock budget is spent
    deadline = start + 60 * cfg.optim.max_minutes
    batches: list[list[int]] = []
    bar = tqdm(total=cfg.optim.max_steps, desc=f"sft {cfg.task}", disable=not progress)
    while result.steps < cfg.optim.max_steps and time.monotonic() < deadline:
        if not batches:
            batches = _batches(lengths, cfg.optim.batch_size, rng)
        ids, attn, labels = collate([rows[i] for i in batches.pop()], tokenizer.pad_token_id)
        for group in optim.param_groups:
            group["lr"] = _lr_at(result.steps, cfg)
        loss = masked_lm_loss(model(input_ids=ids, attention_mask=attn).logits, labels)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        optim.step()
        result.steps += 1
        result.losses.append(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()

    # --- save: weights + tokenizer in HF format, and what produced them
    model.eval()
    save_policy(model, tokenizer, result.checkpoint)
    result.wall_s = time.monotonic() - start
    meta = {
        "config": cfg.model_dump(mode="json"),
        "steps": result.steps,
        "final_loss": sum(result.losses[-20:]) / max(1, len(result.losses[-20:])),
        "wall_s": result.wall_s,
        "n_parameters": result.n_parameters,
    }
    (result.checkpoint / "testbed_sft.json").write_text(json.dumps(meta, indent=2))
    return result
