"""A KV cache whose layers write each decoded position in place.

transformers' `DynamicLayer` concatenates every new position onto its keys and values, so each
decode step copies the whole cache of every layer: on the testbed policy at 64 rows that copy
was a sixth of a decode step (`BENCHMARKS.md`, "Rollout"). `InPlaceLayer` writes each
position in place into buffers with room to spare, and `keys` and `values` are views of the
filled part, which is what the model's attention reads. The room grows by doubling up to the
positions the decode loop can add, so a batch whose rows stop early never holds memory for
`max_new_tokens` positions (a large model's cache on a GPU).
"""

from __future__ import annotations

import torch
from transformers import DynamicCache, PretrainedConfig
from transformers.cache_utils import DynamicLayer


class InPlaceLayer(DynamicLayer):
    """A `DynamicLayer` for at most `extra_positions` after the first update's positions,
    written in place; room is taken `chunk` positions at first, then by doubling."""

    def __init__(self, extra_positions: int, chunk: int = 64) -> None:
        super().__init__()
        self.extra_positions, self.chunk = extra_positions, chunk
        self._filled = self._limit = 0
        self._key_buf: torch.Tensor | None = None
        self._value_buf: torch.Tensor | None = None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
               ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.is_initialized, self.device = True, key_states.device
            self._limit = key_states.shape[-2] + self.extra_positions
            self._key_buf = _empty_like(key_states, 0)
            self._value_buf = _empty_like(value_states, 0)
        assert self._key_buf is not None and self._value_buf is not None
        end = self._filled + key_states.shape[-2]
        if end > self._limit:
            raise RuntimeError(f"the KV cache holds at most {self._limit} positions and was "
                               f"asked for {end}")
        if end > self._key_buf.shape[-2]:
            self._grow(min(self._limit, max(end + self.chunk, 2 * self._key_buf.shape[-2])))
        assert self._key_buf is not None and self._value_buf is not None
        self._key_buf[:, :, self._filled:end] = key_states
        self._value_buf[:, :, self._filled:end] = value_states
        self._set_filled(end)
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self._key_buf is not None and self._value_buf is not None:
            self._key_buf, self._value_buf = self._key_buf[indices], self._value_buf[indices]
            self._set_filled(self._filled)

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove > 0:
            raise ValueError(f"crop takes a negative count of positions, got {tokens_to_remove}")
        if tokens_to_remove and self._key_buf is not None:
            self._set_filled(max(0, self._filled + tokens_to_remove))

    def reset(self) -> None:
        self._key_buf = self._value_buf = None
        self._filled = 0
        super().reset()

    def _grow(self, room: int) -> None:
        assert self._key_buf is not None and self._value_buf is not None
        keys, values = _empty_like(self._key_buf, room), _empty_like(self._value_buf, room)
        keys[:, :, :self._filled] = self._key_buf[:, :, :self._filled]
        values[:, :, :self._filled] = self._value_buf[:, :, :self._filled]
        self._key_buf, self._value_buf = keys, values

    def _set_filled(self, filled: int) -> None:
        assert self._key_buf is not None and self._value_buf is not None
        self._filled = filled
        self.keys = self._key_buf[:, :, :filled]
        self.values = self._value_buf[:, :, :filled]


def _empty_like(states: torch.Tensor, positions: int) -> torch.Tensor:
    batch, heads, _, dim = states.shape
    return states.new_empty((batch, heads, positions, dim))


def in_place_cache(config: PretrainedConfig, extra_positions: int,
                       chunk: int = 64) -> DynamicCache:
    """A `DynamicCache` for `config` whose full-attention layers are `InPlaceLayer`s
    (sliding-window layers, which drop positions, keep transformers' own)."""
    cache = DynamicCache(config=config)
    cache.layers = [InPlaceLayer(extra_positions, chunk) if type(layer) is DynamicLayer
                    else layer for layer in cache.layers]
    return cache
