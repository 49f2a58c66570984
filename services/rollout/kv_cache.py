"""A KV cache whose layers write each decoded position in place.

transformers' `DynamicLayer` concatenates every new position onto its keys and values, so each
decode step copies the whole cache of every layer: on the testbed policy at 64 rows that copy
was a sixth of a decode step (`BENCHMARKS.md`, "Rollout"). `PreallocatedLayer` reserves the
positions the decode loop can add at its first update and fills them in order; `keys` and
`values` are views of the filled part, which is what the model's attention reads.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache, PretrainedConfig
from transformers.cache_utils import DynamicLayer


class PreallocatedLayer(DynamicLayer):
    """A `DynamicLayer` with room for `extra_positions` after the prompt, taken on first use."""

    def __init__(self, extra_positions: int) -> None:
        super().__init__()
        self.extra_positions = extra_positions
        self._filled = 0
        self._key_buf: torch.Tensor | None = None
        self._value_buf: torch.Tensor | None = None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
               ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.is_initialized, self.device = True, key_states.device
            self._key_buf = _reserve(key_states, self.extra_positions)
            self._value_buf = _reserve(value_states, self.extra_positions)
        assert self._key_buf is not None and self._value_buf is not None
        end = self._filled + key_states.shape[-2]
        if end > self._key_buf.shape[-2]:
            raise RuntimeError(f"the KV cache reserved {self._key_buf.shape[-2]} positions and "
                               f"was asked for {end}")
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

    def _set_filled(self, filled: int) -> None:
        assert self._key_buf is not None and self._value_buf is not None
        self._filled = filled
        self.keys = self._key_buf[:, :, :filled]
        self.values = self._value_buf[:, :, :filled]


def _reserve(states: torch.Tensor, extra_positions: int) -> torch.Tensor:
    batch, heads, length, dim = states.shape
    return states.new_empty((batch, heads, length + extra_positions, dim))


def preallocated_cache(config: PretrainedConfig, extra_positions: int) -> DynamicCache:
    """A `DynamicCache` for `config` whose full-attention layers are `PreallocatedLayer`s
    (sliding-window layers, which drop positions, keep transformers' own)."""
    cache = DynamicCache(config=config)
    cache.layers = [PreallocatedLayer(extra_positions) if type(layer) is DynamicLayer else layer
                    for layer in cache.layers]
    return cache
