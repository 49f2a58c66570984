"""Logits of rows that continue shared prefixes, each distinct prefix computed once.

GRPO trains on groups of completions of one prompt, and SFT on demonstrations that all open
with the task's instructions: most of a row's tokens are a prefix that other rows of the
batch hold too, and no loss reads their logits. Running each distinct prefix once, then every
row's own part against the prefix's keys and values (repeated per row, so gradients flow back
through both), gives the same logits as running every row whole at the cost of the distinct
tokens only. Rows of one prefix share its cache entry; prefixes of different lengths are
right-padded, the padding masked out, and every row's own part takes the positions that follow
its own prefix, so the numbers do not depend on which other rows share the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import DynamicCache, PretrainedConfig

#: A causal LM's forward pass: (input_ids, attention_mask, position_ids, cache) -> logits.
Forward = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, DynamicCache], torch.Tensor]


@dataclass(frozen=True)
class PrefixedRows:
    """N rows cut into G distinct prefixes and N own parts ("suffixes").

    prefixes, prefix_mask: (G, L) right-padded; owner: (N,) the prefix of each row;
    suffixes, suffix_mask: (N, S) right-padded.
    """

    prefixes: torch.Tensor
    prefix_mask: torch.Tensor
    owner: torch.Tensor
    suffixes: torch.Tensor
    suffix_mask: torch.Tensor

    @property
    def starts(self) -> torch.Tensor:
        """(N,) the position of each row's first suffix token (its prefix's length)."""
        return self.prefix_mask.sum(1)[self.owner]


def split_rows(input_ids: torch.Tensor, attention_mask: torch.Tensor,
               cuts: list[int]) -> PrefixedRows:
    """Right-padded rows (N, T) cut before position `cuts[r]` (≥ 1), equal prefixes merged."""
    rows = [input_ids[r, :cut].tolist() for r, cut in enumerate(cuts)]
    distinct: dict[tuple[int, ...], int] = {}
    owner = torch.tensor([distinct.setdefault(tuple(p), len(distinct)) for p in rows])
    width = max(len(p) for p in distinct)
    prefixes = torch.zeros((len(distinct), width), dtype=input_ids.dtype)
    prefix_mask = torch.zeros((len(distinct), width), dtype=attention_mask.dtype)
    for g, prefix in enumerate(distinct):
        prefixes[g, : len(prefix)] = torch.tensor(prefix, dtype=input_ids.dtype)
        prefix_mask[g, : len(prefix)] = 1
    lengths = attention_mask.sum(1).tolist()
    span = max(n - cut for n, cut in zip(lengths, cuts, strict=True))
    suffixes = torch.zeros((len(cuts), span), dtype=input_ids.dtype)
    suffix_mask = torch.zeros((len(cuts), span), dtype=attention_mask.dtype)
    for r, (n, cut) in enumerate(zip(lengths, cuts, strict=True)):
        suffixes[r, : n - cut] = input_ids[r, cut:n]
        suffix_mask[r, : n - cut] = 1
    device = input_ids.device
    return PrefixedRows(prefixes.to(device), prefix_mask.to(device), owner.to(device),
                        suffixes.to(device), suffix_mask.to(device))


def prefixed_logits(forward: Forward, config: PretrainedConfig,
                    rows: PrefixedRows) -> torch.Tensor:
    """Logits (N, S, V) of every row's suffix, as if each row had been run whole."""
    cache = DynamicCache(config=config)
    width = rows.prefixes.shape[1]
    device = rows.prefixes.device
    positions = torch.arange(width, device=device).expand(rows.prefixes.shape[0], -1)
    forward(rows.prefixes, rows.prefix_mask, positions, cache)
    if rows.prefixes.shape[0] == 1:  # a plain repeat: its backward is a sum, not a scatter
        cache.batch_repeat_interleave(rows.owner.shape[0])
    else:
        cache.batch_select_indices(rows.owner)
    mask = torch.cat([rows.prefix_mask[rows.owner], rows.suffix_mask], 1)
    positions = rows.starts[:, None] + torch.arange(rows.suffixes.shape[1], device=device)
    return forward(rows.suffixes, mask, positions, cache)


def realign(values: torch.Tensor, starts: torch.Tensor, width: int) -> torch.Tensor:
    """Values (N, K) read from suffix logits put back in the rows' frame (N, width).

    Logit k of row r's suffix sits at position starts[r] + k of the row, so its value lands
    at index starts[r] + k; indices before the suffix read 0, those past `width` are dropped.
    """
    index = starts[:, None] + torch.arange(values.shape[1], device=values.device)
    room = torch.zeros((values.shape[0], width + values.shape[1]), dtype=values.dtype,
                       device=values.device)
    return room.scatter(1, index, values)[:, :width]
