"""Warm-start the testbed policy by supervised fine-tuning on mixed-strategy demonstrations.

The loss is the token-level mean cross-entropy over the tokens the policy itself would write
(tool calls and answers); the prompt and the tool outputs are context only, masked out, as in
the RL loss later. Reads top to bottom: data, model, loop, save.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import torch
from tqdm import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from paretopo.hf_policy import cache_kwarg, save_policy
from paretopo.shared_prefix import PrefixedRows, prefixed_logits
from paretopo.testbed import calc, kbqa
from paretopo.testbed.config import SftConfig
from paretopo.testbed.demos import Demo, Strategy, calc_demo, kbqa_demo, sample_demos
from paretopo.testbed.model import build_model, n_parameters
from paretopo.testbed.prompts import TaskName
from paretopo.testbed.splits import Split
from paretopo.testbed.tasks import items_version
from paretopo.testbed.tokenizer import build_tokenizer
from paretopo.testbed.tools import LexicalIndex

log = logging.getLogger(__name__)


PROBE_ITEMS = 32  # held-out items per difficulty
#: Init seeds of a seed's restarts: seed + k * INIT_SEED_STRIDE (k = 1, 2, ...).
INIT_SEED_STRIDE = 1000


@dataclass
class CopyProbe:
    """Teacher-forced loss of ideal demonstrations of validation items, per difficulty that
    needs a call: whether the policy learnt to copy the question into its calls."""

    loss_by_difficulty: dict[str, float]
    bound: float  # `SftConfig.copy_loss_max`
    #: `SftConfig.copy_probe_on`: the difficulties that decide, each under the bound;
    #: empty: the best of them decides.
    judged: tuple[str, ...] = ()

    @property
    def score(self) -> float:
        """The loss the verdict compares with the bound (lower: nearer to copying): the
        worst of the judged difficulties, else the best of all."""
        if self.judged:
            return max(self.loss_by_difficulty[d] for d in self.judged)
        return min(self.loss_by_difficulty.values(), default=0.0)

    @property
    def copies(self) -> bool:
        return self.score <= self.bound

    def losses(self) -> str:
        return ", ".join(f"{k} {v:.3f}" for k, v in self.loss_by_difficulty.items())

    def needed(self) -> str:
        """What passing takes, in words."""
        where = " and ".join(self.judged) if self.judged else "one difficulty"
        return f"at most {self.bound} on {where}"

    def verdict(self) -> str:
        if self.copies:
            return f"copy probe passed ({self.losses()}; {self.needed()} needed)"
        return (f"this warm start has not learnt to copy the question into its calls (copy "
                f"probe: {self.losses()}; {self.needed()} needed): RL from it "
                "will have little reward to learn from. Try another --seed, or more "
                "--restarts (runs from other initialisations).")


@dataclass
class SftResult:
    checkpoint: Path
    steps: int
    losses: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    n_parameters: int = 0
    probe: CopyProbe | None = None
    #: Every run of `optim.max_steps` made (more than one when `restarts` were needed):
    #: {"init_seed", "steps", "copy_probe", "copies"}; the kept one's init seed.
    attempts: list[dict] = field(default_factory=list)
    init_seed: int = 0


#: What a warm start records next to its weights.
SFT_RECORD = "testbed_sft.json"


#: Fields of an `SftConfig` that do not change the weights it makes: where they are saved,
#: and the threads (`threads: auto` keeps every core only where they give the one-thread
#: weights bit for bit).
NOT_RECIPE = frozenset({"out_dir", "threads"})


def recipe(cfg: SftConfig) -> dict:
    """What the weights of a warm start are a function of (with the machine's numerics)."""
    return cfg.model_dump(mode="json", exclude=set(NOT_RECIPE))


def made_by_recipe(checkpoint: Path, cfg: SftConfig) -> bool:
    """Whether the warm start in `checkpoint` was made by `cfg`'s recipe from the items its
    task generates today (a record without a version predates `items_version`: version 1).
    A record from before a recipe field existed reads that field's default."""
    record = checkpoint / SFT_RECORD
    if not record.is_file():
        return False
    meta = json.loads(record.read_text())
    if meta.get("items_version", 1) != items_version(cfg.task):
        return False
    try:
        made_by = SftConfig.model_validate(meta.get("config"))
    except ValueError:  # no config, or one with fields this code no longer has
        return False
    return recipe(made_by) == recipe(cfg)


def task_items(cfg: SftConfig, split: Split = Split.TRAIN) -> tuple[list, Callable]:
    """The items of one split of `cfg.task` (calc: the first `demos.n_items`) and the function
    that demonstrates one."""
    if cfg.task is TaskName.CALC:
        return calc.generate(split, cfg.demos.n_items, seed=cfg.seed), calc_demo
    world = kbqa.build_world(cfg.seed)
    index = LexicalIndex(world.passages())
    make = partial(kbqa_demo, world=world, index=index, top_k=cfg.demos.search_top_k)
    return kbqa.generate(split, seed=cfg.seed), make


def build_demos(cfg: SftConfig) -> list[Demo]:
    """The warm-start data of `cfg.task`, drawn from the training split only."""
    return _sample_demos(cfg, *task_items(cfg))


def _sample_demos(cfg: SftConfig, items: Sequence, make: Callable) -> list[Demo]:
    d = cfg.demos
    return sample_demos(
        items, d.n_demos, make, seed=cfg.seed, mix=d.mix, difficulty_weights=d.difficulty_weights
    )


def is_ideal(demo: Demo) -> bool:
    """A demonstration of the ideal agent: the minimal number of calls and the right answer."""
    return demo.correct and demo.strategy is not Strategy.EXTRA  # right, no needless call


def curriculum(cfg: SftConfig, demos: Sequence[Demo], difficulty: Sequence[str]) -> list[
    tuple[int, list[int]]
]:
    """The phases of training as (first step after the phase, indices of the demos it draws).

    Copying (question -> code, tool output -> answer) is what a character-level policy learns
    slowest. With the whole strategy mix from the first step it sits on a plateau beyond the
    CPU budget: every strategy copies at other character offsets, and the gradients of the
    patterns dilute each other. Measured on calc (2 layers x 128): ideal demonstrations of
    hard items alone are copied exactly after ~300 steps, while all ideal demonstrations
    together show no copying after 1200. So: a focus phase (ideal demos of `optim.focus`
    difficulties), a skills phase (ideal demos of every difficulty), then the mix, which sets
    the (mediocre) strategy on top of skills already learnt.
    """
    o = cfg.optim
    ideal = [i for i, d in enumerate(demos) if is_ideal(d)]
    focus = [i for i in ideal if difficulty[i] in set(o.focus)]
    if o.focus_steps and not focus:
        raise ValueError(f"optim.focus {o.focus} selects no ideal demonstration")
    phases = [(o.focus_steps, focus), (o.focus_steps + o.skills_steps, ideal)]
    return [p for p in phases if p[0] > 0] + [(math.inf, list(range(len(demos))))]


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


def shared_prefix_length(rows: Sequence[tuple[list[int], list[int]]]) -> int:
    """How many leading tokens every row shares (the task template's instructions), stopped
    one token before the first label of any row, so every labelled token is predicted from a
    logit of the row's own part."""
    first = rows[0][0]
    common = len(first)
    for ids, _ in rows[1:]:
        common = next(
            (i for i, (a, b) in enumerate(zip(first[:common], ids, strict=False)) if a != b),
            min(common, len(ids)),
        )
    first_label = min(mask.index(1) for _, mask in rows)
    return max(0, min(common, first_label - 1))


def suffix_logits(
    model: PreTrainedModel, prefix: torch.Tensor, ids: torch.Tensor, attn: torch.Tensor
) -> torch.Tensor:
    """Logits (B, T, V) of rows `ids` (B, T) that all continue `prefix` (P,), the prefix
    computed once (`paretopo.shared_prefix`). On calc the template's instructions are ~45 % of
    a demonstration's tokens, so a step costs about half."""
    if prefix.numel() == 0:
        return model(input_ids=ids, attention_mask=attn).logits
    kwarg = cache_kwarg(type(model))
    rows = PrefixedRows(prefix[None], torch.ones((1, prefix.numel()), dtype=attn.dtype),
                        torch.zeros(ids.shape[0], dtype=torch.long), ids, attn)
    return prefixed_logits(
        lambda i, a, pos, cache: model(input_ids=i, attention_mask=a, position_ids=pos,
                                       use_cache=True, **{kwarg: cache}).logits,
        model.config, rows)


def masked_lm_loss(
    logits: torch.Tensor, labels: torch.Tensor, tokens_per_batch: float | None = None
) -> torch.Tensor:
    """Next-token cross-entropy summed over the labelled tokens, divided by `tokens_per_batch`
    (default: this batch's labelled-token count, i.e. the plain mean). logits (B, T, V),
    labels (B, T).

    Training passes the dataset-wide mean instead of the batch's own count: batches are
    bucketed by length, so a per-batch mean would give each token of a short demonstration
    (a direct answer) several times the weight of a token of a long one (tool calls), and the
    policy would learn to answer directly far more often than the demonstrations do.
    """
    total = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]),
        labels[:, 1:].reshape(-1),
        ignore_index=-100,
        reduction="sum",
    )
    count = (labels[:, 1:] != -100).sum().clamp(min=1) if tokens_per_batch is None else None
    return total / (tokens_per_batch if count is None else count)


ProbeBatches = dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def probe_batches(tokenizer: PreTrainedTokenizerBase, cfg: SftConfig) -> ProbeBatches:
    """The copy probe's data: per difficulty that needs a call, one batch of the
    minimal-call demonstrations of up to `PROBE_ITEMS` validation items."""
    items, make = task_items(cfg, Split.VALIDATION)
    rng = random.Random(f"probe:{cfg.seed}")
    by_difficulty: dict[str, list] = {}
    for item in items:
        if item.min_calls:
            by_difficulty.setdefault(str(item.difficulty), []).append(item)
    return {
        level: collate([encode_demo(make(i, Strategy.MINIMAL, rng), tokenizer)
                        for i in chosen[:PROBE_ITEMS]], tokenizer.pad_token_id)
        for level, chosen in sorted(by_difficulty.items())
    }


@torch.no_grad()
def run_probe(model: PreTrainedModel, batches: ProbeBatches, cfg: SftConfig) -> CopyProbe:
    """`CopyProbe` of `model` on `batches` (one forward pass per difficulty), judged as
    `cfg` says; leaves the model in the mode it found it."""
    was_training = model.training
    model.eval()
    losses = {
        level: round(float(masked_lm_loss(model(input_ids=ids, attention_mask=attn).logits,
                                          labels)), 4)
        for level, (ids, attn, labels) in batches.items()
    }
    model.train(was_training)
    return CopyProbe(losses, cfg.copy_loss_max, tuple(cfg.copy_probe_on))


def copy_probe(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
               cfg: SftConfig) -> CopyProbe:
    """`CopyProbe` of `model` on the validation items of `cfg.task`."""
    return run_probe(model, probe_batches(tokenizer, cfg), cfg)


def _lr_at(step: int, cfg: SftConfig) -> float:
    """Linear warm-up, then cosine decay to 10 % of the peak over `max_steps`.

    A function of the step alone, so the warm start is the same whatever the machine's load.
    """
    o = cfg.optim
    if step < o.warmup_steps:
        return o.lr * (step + 1) / o.warmup_steps
    progress = (step - o.warmup_steps) / max(1, o.max_steps - o.warmup_steps)
    return o.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


@dataclass
class _Data:
    """The warm-start data, encoded once and shared by every attempt."""

    tokenizer: PreTrainedTokenizerBase
    rows: list[tuple[list[int], list[int]]]  # after the shared prefix
    prefix: torch.Tensor
    tokens_per_batch: float
    phases: list[tuple[int, list[int]]]
    probe: ProbeBatches

    @property
    def lengths(self) -> list[int]:
        return [len(ids) for ids, _ in self.rows]


def _prepare(cfg: SftConfig) -> _Data:
    tokenizer = build_tokenizer()
    items, make = task_items(cfg)
    demos = _sample_demos(cfg, items, make)
    difficulty = {item.id: str(item.difficulty) for item in items}
    rows = [encode_demo(d, tokenizer) for d in demos]
    n_prefix = shared_prefix_length(rows)
    prefix = torch.tensor(rows[0][0][:n_prefix], dtype=torch.long)
    rows = [(ids[n_prefix:], mask[n_prefix:]) for ids, mask in rows]
    return _Data(
        tokenizer, rows, prefix,
        # labelled tokens of an average batch (the first token of a row is never a target)
        cfg.optim.batch_size * sum(sum(m[1:]) for _, m in rows) / len(rows),
        curriculum(cfg, demos, [difficulty[d.item_id] for d in demos]),
        probe_batches(tokenizer, cfg),
    )


def init_seed(seed: int, attempt: int) -> int:
    """The weight initialisation of attempt `attempt` (0: the first) of seed `seed`'s warm
    start; the data and the batch order are the same for every attempt."""
    return seed + INIT_SEED_STRIDE * attempt


def _train_once(cfg: SftConfig, data: _Data, attempt: int, deadline: float,
                progress: bool) -> tuple[PreTrainedModel, list[float]]:
    """One run of `optim.max_steps` from the initialisation of `attempt` (or until
    `deadline`); the trained model and its per-step losses."""
    rng = random.Random(f"sft:{cfg.seed}")
    phases = list(data.phases)
    lengths = data.lengths
    model = build_model(data.tokenizer, cfg.model, seed=init_seed(cfg.seed, attempt))
    model.train()
    optim = torch.optim.AdamW(
        model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay,
        betas=(0.9, cfg.optim.beta2),
    )
    losses: list[float] = []
    batches: list[list[int]] = []
    desc = f"sft {cfg.task}" + (f" (attempt {attempt + 1})" if attempt else "")
    bar = tqdm(total=cfg.optim.max_steps, desc=desc, disable=not progress)
    while (step := len(losses)) < cfg.optim.max_steps and time.monotonic() < deadline:
        if step == phases[0][0]:
            phases.pop(0)
            batches = []  # next phase: batches from its own pool
        if not batches:
            pool = phases[0][1]
            batches = [
                [pool[j] for j in b]
                for b in _batches([lengths[i] for i in pool], cfg.optim.batch_size, rng)
            ]
        ids, attn, labels = collate([data.rows[i] for i in batches.pop()],
                                    data.tokenizer.pad_token_id)
        for group in optim.param_groups:
            group["lr"] = _lr_at(step, cfg)
        logits = suffix_logits(model, data.prefix, ids, attn)
        loss = masked_lm_loss(logits, labels, data.tokens_per_batch)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        optim.step()
        losses.append(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    model.eval()
    return model, losses


#: Steps each thread count runs in `pick_threads` (about 10 s in all on these VMs).
THREAD_CHECK_STEPS = 40
#: How much faster the check's run on every core must be to be chosen.
THREAD_CHECK_SPEEDUP = 1.15


@dataclass
class ThreadCheck:
    """What `pick_threads` measured: the threads tried, whether they gave the one-thread
    weights bit for bit, and each run's seconds."""

    threads: int
    same_weights: bool
    seconds: dict[int, float]

    @property
    def chosen(self) -> int:
        fast = self.seconds[self.threads] * THREAD_CHECK_SPEEDUP <= self.seconds[1]
        return self.threads if self.same_weights and fast else 1


def pick_threads(cfg: SftConfig, data: _Data) -> ThreadCheck | None:
    """For ``threads: auto``: train the first `THREAD_CHECK_STEPS` steps with one thread and
    with every core of this process, from the same initialisation, and keep the cores only
    if the weights agree bit for bit and the run was faster. On some CPUs more threads give
    other weights, hence another warm start (on the VM of 2026-12-02: RL +0.014 instead of
    +0.12), and on a busy machine they are slower; both cases keep one thread. None when
    `cfg.threads` is a number or there is one core."""
    cores = len(os.sched_getaffinity(0))
    if cfg.threads != "auto" or cores == 1:
        return None
    short = cfg.model_copy(update={"optim": cfg.optim.model_copy(
        update={"max_steps": THREAD_CHECK_STEPS, "max_minutes": None})})
    weights, seconds = {}, {}
    for threads in (1, cores):
        torch.set_num_threads(threads)
        start = time.perf_counter()
        model, _ = _train_once(short, data, 0, math.inf, progress=False)
        seconds[threads] = round(time.perf_counter() - start, 3)
        weights[threads] = model.state_dict()
    same = all(torch.equal(weights[1][k], weights[cores][k]) for k in weights[1])
    return ThreadCheck(cores, same, seconds)


def train_sft(cfg: SftConfig, *, progress: bool = True) -> SftResult:
    """Run one warm start and save the checkpoint (HF format) to `cfg.checkpoint_dir`.

    A run whose copy probe fails is followed by another from a new initialisation, up to
    `cfg.restarts` times; the first that copies is kept (else the one nearest to copying).
    """
    start = time.monotonic()
    torch.set_num_threads(1 if cfg.threads == "auto" else cfg.threads)
    data = _prepare(cfg)
    check = pick_threads(cfg, data)
    threads = check.chosen if check else torch.get_num_threads()
    torch.set_num_threads(threads)
    if check:
        log.info("sft threads: %d (%d threads %s the one-thread weights in %d steps; "
                 "seconds %s)", threads, check.threads,
                 "gave" if check.same_weights else "did not give", THREAD_CHECK_STEPS,
                 check.seconds)
    deadline = start + 60 * (cfg.optim.max_minutes or math.inf)
    kept: tuple[PreTrainedModel, list[float], CopyProbe, int] | None = None
    attempts: list[dict] = []
    for attempt in range(cfg.restarts + 1):
        model, losses = _train_once(cfg, data, attempt, deadline, progress)
        probe = run_probe(model, data.probe, cfg)
        attempts.append({"init_seed": init_seed(cfg.seed, attempt), "steps": len(losses),
                         "copy_probe": probe.loss_by_difficulty, "copies": probe.copies})
        if kept is None or probe.score < kept[2].score:
            kept = (model, losses, probe, attempt)
        if probe.copies or len(losses) < cfg.optim.max_steps:
            break  # it copies, or the wall-clock cap ended it
        if attempt < cfg.restarts:
            log.warning("the warm start from init seed %d has not learnt to copy (copy "
                        "probe: %s; %s needed): training again from init seed %d (restart "
                        "%d of %d)", init_seed(cfg.seed, attempt), probe.losses(),
                        probe.needed(), init_seed(cfg.seed, attempt + 1), attempt + 1,
                        cfg.restarts)
    model, losses, probe, attempt = kept
    if len(losses) < cfg.optim.max_steps:
        log.warning("sft stopped by its %.1f-minute cap after %d of %d steps: this warm start "
                    "depends on the machine's load", cfg.optim.max_minutes, len(losses),
                    cfg.optim.max_steps)
    if not probe.copies:
        log.warning("%s", probe.verdict())

    # --- save: weights + tokenizer in HF format, and what produced them
    result = SftResult(cfg.checkpoint_dir, len(losses), losses, n_parameters=n_parameters(model),
                       probe=probe, attempts=attempts, init_seed=init_seed(cfg.seed, attempt))
    save_policy(model, data.tokenizer, result.checkpoint)
    result.wall_s = time.monotonic() - start
    meta = {
        "config": cfg.model_dump(mode="json"),
        "steps": result.steps,
        "final_loss": sum(losses[-20:]) / max(1, len(losses[-20:])),
        "wall_s": result.wall_s,
        "n_parameters": result.n_parameters,
        "init_seed": result.init_seed,
        "copy_probe": probe.loss_by_difficulty,
        "copies": probe.copies,
        "attempts": attempts,
        "items_version": items_version(cfg.task),
        # The same seed gives other weights on another CPU's kernels (docs/testbed.md,
        # "Warm-start seeds"): say which ones made these.
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": threads,
        "thread_check": asdict(check) if check else None,
    }
    (result.checkpoint / SFT_RECORD).write_text(json.dumps(meta, indent=2))
    return result
