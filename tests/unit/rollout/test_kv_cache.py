"""The in-place KV cache: the same keys and values as transformers' own, written in place."""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache, Qwen2Config

from services.rollout.kv_cache import InPlaceLayer, in_place_cache

CONFIG = Qwen2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, vocab_size=50)


def states(batch: int, length: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, 2, length, 8, generator=g),
            torch.randn(batch, 2, length, 8, generator=g))


def fill(cache, steps: int, batch: int = 3) -> None:
    for layer in range(2):
        cache.update(*states(batch, 5, layer), layer)
    for step in range(steps):
        for layer in range(2):
            cache.update(*states(batch, 1, 100 + 10 * step + layer), layer)


@pytest.mark.parametrize("chunk", [1, 3, 64])  # room grown at every step, now and then, never
def test_it_holds_what_the_dynamic_cache_holds(chunk):
    ours = in_place_cache(CONFIG, extra_positions=4, chunk=chunk)
    theirs = DynamicCache(config=CONFIG)
    assert all(isinstance(layer, InPlaceLayer) for layer in ours.layers)
    fill(ours, 4)
    fill(theirs, 4)
    assert ours.get_seq_length() == theirs.get_seq_length() == 9
    for a, b in zip(ours.layers, theirs.layers, strict=True):
        assert torch.equal(a.keys, b.keys) and torch.equal(a.values, b.values)


def test_selecting_rows_keeps_their_positions_and_room():
    ours = in_place_cache(CONFIG, extra_positions=4, chunk=1)
    theirs = DynamicCache(config=CONFIG)
    fill(ours, 2)
    fill(theirs, 2)
    rows = torch.tensor([2, 0])
    ours.batch_select_indices(rows)
    theirs.batch_select_indices(rows)
    for layer in range(2):  # two more positions fit after the selection
        for _ in range(2):
            new = states(2, 1, 7 + layer)
            ours.update(*new, layer)
            theirs.update(*new, layer)
    for a, b in zip(ours.layers, theirs.layers, strict=True):
        assert torch.equal(a.keys, b.keys) and torch.equal(a.values, b.values)


def test_more_positions_than_reserved_is_a_clear_error():
    cache = in_place_cache(CONFIG, extra_positions=1)
    fill(cache, 1)
    with pytest.raises(RuntimeError, match="holds at most 6 positions and was asked for 7"):
        cache.update(*states(3, 1, 0), 0)


def test_room_grows_with_use_not_with_the_limit():
    cache = in_place_cache(CONFIG, extra_positions=10_000, chunk=4)
    fill(cache, 0)
    layer = cache.layers[0]
    assert layer._key_buf.shape[-2] == 5 + 4  # the prompt and one chunk, not 10,005
    fill_more = [states(3, 1, 50 + i) for i in range(6)]
    for new in fill_more:
        layer.update(*new)
    assert layer.keys.shape[-2] == 11 and layer._key_buf.shape[-2] == 18  # doubled once
    assert torch.equal(layer.keys[:, :, 5:], torch.cat([k for k, _ in fill_more], dim=-2))


def test_crop_and_reset():
    cache = in_place_cache(CONFIG, extra_positions=4)
    fill(cache, 3)
    cache.crop(-2)
    assert cache.get_seq_length() == 6
    cache.update(*states(3, 1, 5), 0)
    assert cache.layers[0].keys.shape[-2] == 7
    cache.reset()
    assert cache.get_seq_length() == 0
