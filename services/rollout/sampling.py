"""Next-token sampling for a batch of rows, each with its own temperature, top-k, top-p and
random stream.

Pure tensor code (no model, no I/O), so the engine's decode loop stays short and these rules
are tested on their own. The order is the one vLLM and `transformers` use: temperature, then
top-k, then top-p (nucleus) on what top-k kept; temperature 0 means greedy (argmax).

Each row draws its token by inverse CDF from one uniform number that the caller supplies per
row (`RowStreams`): a seeded row takes it from a stream derived from its own seed alone, so
the tokens of a seeded request do not depend on which other rows share its batch, the batch
window or the order in which concurrent requests arrived.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

_MASK64 = (1 << 64) - 1
_UNIT = float(2**52)  # fixed-point scale of probabilities (`exact_cumsum`)


def _mix64(z: int) -> int:
    """splitmix64's finaliser: a bijection of 64-bit ints that spreads every input bit."""
    z = (z + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def _absorb(state: int, value: int) -> int:
    # Every 64-bit limb of `value` (Python ints are unbounded, seeds are products of counters)
    # enters the state, so seeds that differ only above bit 64 still give different streams.
    state = _mix64(state ^ (value & _MASK64))
    value >>= 64
    while value not in (0, -1):
        state = _mix64(state ^ (value & _MASK64))
        value >>= 64
    return state


def derive_seed(seed: int, *keys: int) -> int:
    """A seed in [0, 2**63) determined by `seed` and `keys` alone (the same in every process
    and Python version); different keys give unrelated streams. Fits vLLM's int64 seeds."""
    state = _absorb(0, seed)
    for key in keys:
        state = _absorb(_mix64(state), key)
    return _mix64(state) >> 1


class RowStreams:
    """One uniform number in [0, 1) per row per decode step.

    A seeded row draws from its own `random.Random(seed)`: its k-th token uses the k-th number
    of that stream, whatever the other rows do. Unseeded rows share `shared` (the engine's
    stream), in row order.
    """

    def __init__(self, seeds: Sequence[int | None], shared: random.Random) -> None:
        self._streams = [shared if s is None else random.Random(s) for s in seeds]

    def __len__(self) -> int:
        return len(self._streams)

    def next(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """(B,) float64: this step's uniform number of every row (finished rows draw too, so a
        row's position in its stream is always its step index)."""
        return torch.tensor([s.random() for s in self._streams], dtype=torch.float64,
                            device=device)


def sample_next(
    logits: torch.Tensor,
    temperature: torch.Tensor,
    top_k: torch.Tensor,
    top_p: torch.Tensor,
    uniforms: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one token per row.

    Parameters
    ----------
    logits : (B, V) float
        Next-token logits.
    temperature : (B,) float
        0 means greedy for that row.
    top_k : (B,) int
        Most likely tokens kept; 0 keeps all.
    top_p : (B,) float in (0, 1]
        Smallest set of most likely tokens whose mass reaches top_p is kept.
    uniforms : (B,) float in [0, 1)
        The row's random number for this step (`RowStreams.next`); ignored by greedy rows.

    Returns
    -------
    tokens : (B,) long
    logprobs : (B,) float
        Log-probability of each drawn token under the distribution it was drawn from (after
        temperature, top-k and top-p; the plain softmax for greedy rows).
    """
    logits = logits.float()
    greedy = temperature <= 0
    safe_t = torch.where(greedy, torch.ones_like(temperature), temperature).float()
    scaled = logits / safe_t[:, None]
    if bool(((top_k > 0) | (top_p < 1.0)).any()):
        scaled = _truncate(scaled, top_k, top_p)
    logp = torch.log_softmax(scaled, dim=-1)
    drawn = _inverse_cdf(logp.exp(), uniforms)
    tokens = torch.where(greedy, logits.argmax(dim=-1), drawn)
    return tokens, logp.gather(1, tokens[:, None]).squeeze(1)


def exact_cumsum(probs: torch.Tensor) -> torch.Tensor:
    """Running sums along the last axis in float64, summed exactly: as int64 multiples of
    2**-52 (`_UNIT`), so the bits do not depend on the order in which a kernel adds. A token
    below 2**-53 of mass rounds to 0 and cannot be drawn, as a float64 sum would absorb it."""
    return (probs.double() * _UNIT).round().long().cumsum(dim=-1).double() / _UNIT


def _cumulative(probs: torch.Tensor) -> torch.Tensor:
    """Running sums along the vocabulary in float64.

    CUDA's floating-point `cumsum` does not give the same bits twice (seen on an H200 at batch
    1), and with a bf16 model's many tied logits that could change a seeded row's token, so on
    CUDA they are `exact_cumsum`. A CPU sum is sequential and repeats; it stays the plain one,
    which costs 2.5x less there (`BENCHMARKS.md`, GPU smoke).
    """
    return exact_cumsum(probs) if probs.is_cuda else probs.double().cumsum(dim=-1)


def _inverse_cdf(probs: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """The first token whose cumulative probability exceeds u x total, per row."""
    # float64: a float32 running sum over a 152k vocabulary absorbs every token below ~1e-8
    # into its neighbour, so those could never be drawn although their logprob says otherwise.
    cdf = _cumulative(probs)
    total = cdf[:, -1:]
    # u < 1 but u x total can round up to total; the largest double below it still selects the
    # first token reaching total, which has positive probability like every selectable one.
    target = torch.minimum(uniforms.to(cdf)[:, None] * total,
                           torch.nextafter(total, torch.zeros_like(total)))
    # right=True: the first index with cdf > target. cdf only grows at tokens of positive
    # probability, so a token that top-k/top-p removed (probability 0) is never chosen.
    return torch.searchsorted(cdf, target, right=True).squeeze(1)


def _truncate(scaled: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Set to -inf every logit outside the row's top-k and top-p sets (one sort per call)."""
    # stable: tied logits (common in bf16) keep vocabulary order, on every device and run
    sorted_logits, order = scaled.sort(dim=-1, descending=True, stable=True)
    vocab = scaled.shape[-1]
    rank = torch.arange(vocab, device=scaled.device)[None, :]
    k = torch.where(top_k > 0, top_k, torch.full_like(top_k, vocab))
    drop = rank >= k[:, None]
    sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
    probs = torch.softmax(sorted_logits, dim=-1)
    # Mass strictly before each token: a token is kept while that mass is below top_p, so the
    # most likely token is always kept and the kept set is the smallest reaching top_p.
    before = _cumulative(probs) - probs.double()
    drop = drop | (before >= top_p[:, None].double())
    return scaled.scatter(1, order, sorted_logits.masked_fill(drop, float("-inf")))
