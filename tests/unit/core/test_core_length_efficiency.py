"""r_len, the optional third objective: range, ends, monotonicity, input kinds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from paretopo.core.rewards import length_efficiency


def test_ends_and_linear_middle() -> None:
    assert length_efficiency(0, 200) == 1.0
    assert length_efficiency(200, 200) == 0.0
    assert length_efficiency(500, 200) == 0.0
    assert length_efficiency(50, 200) == pytest.approx(0.75)


def test_monotone_non_increasing_and_in_unit_interval() -> None:
    r = length_efficiency(torch.arange(0, 300), 128.0)
    assert r.dtype == torch.get_default_dtype()
    assert bool(((r >= 0) & (r <= 1)).all())
    assert bool((r[1:] <= r[:-1]).all())


def test_input_kinds() -> None:
    assert isinstance(length_efficiency(np.array([1, 2]), 4), np.ndarray)
    assert length_efficiency(torch.tensor([2.0], dtype=torch.float64), 4).dtype == torch.float64


@pytest.mark.parametrize(("n", "budget"), [(-1, 10), (float("nan"), 10), (1, 0), (1, -2)])
def test_bad_input_is_named(n: float, budget: float) -> None:
    with pytest.raises(ValueError, match=r"n_tokens|budget"):
        length_efficiency(n, budget)
