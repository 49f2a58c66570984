"""r_tool (Eq. 4) and the answer checkers behind r_acc."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from paretopo.answers import exact_match, extract_answer, math_equal, normalize_answer
from paretopo.core.rewards import tool_efficiency

PROPERTY = settings(deadline=None, print_blob=True, max_examples=100)

calls = st.integers(0, 50)
smoothing = st.floats(0.05, 10.0)


@pytest.mark.parametrize(
    ("m", "n", "expected"),
    [
        # n = 0, m = 0: f = n = 0, so r_tool = 1.
        (0, 0, 1.0),
        # n = 0: cos(mπ/(2m + c)); m = 1, c = 1: cos(π/3) = 0.5.
        (1, 0, 0.5),
        # m = 2: cos(2π/5) = 0.309017 (golden-ratio value (√5 − 1)/4).
        (2, 0, (math.sqrt(5) - 1) / 4),
        # n = 2, m = 1: f = 2·1·2/3 = 4/3; sin((4/3)·π/4) = sin(π/3) = √3/2.
        (1, 2, math.sqrt(3) / 2),
        # n = 1, m = 3: f = 6/4 = 1.5; sin(1.5·π/2) = sin(3π/4) = √2/2.
        (3, 1, math.sqrt(2) / 2),
        # m = n: f = n; sin(π/2) = 1.
        (4, 4, 1.0),
        # n > 0, m = 0: f = 0; sin 0 = 0.
        (0, 3, 0.0),
        # n unknown (< 0): 0 by choice.
        (2, -1, 0.0),
    ],
)
def test_eq4_hand_worked(m, n, expected):
    assert tool_efficiency(m, n) == pytest.approx(expected, abs=1e-12)


def test_eq4_smoothing_and_types():
    # c = 2, m = 1, n = 0: cos(π/4).
    assert tool_efficiency(1, 0, c=2.0) == pytest.approx(math.sqrt(2) / 2)
    t = tool_efficiency(torch.tensor([0, 1, 2]), torch.tensor([0, 2, -1]))
    assert isinstance(t, torch.Tensor) and t.dtype == torch.get_default_dtype()
    assert torch.allclose(t, torch.tensor([1.0, math.sqrt(3) / 2, 0.0]))
    assert tool_efficiency(torch.tensor([1.0], dtype=torch.float64), 2).dtype == torch.float64
    arr = tool_efficiency(np.array([1, 2]), np.array([2, 2]))
    assert isinstance(arr, np.ndarray) and arr[1] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="c must be"):
        tool_efficiency(1, 1, c=0.0)
    with pytest.raises(ValueError, match="m"):
        tool_efficiency(-1, 1)


@PROPERTY
@given(calls, st.integers(-1, 50), smoothing)
def test_eq4_range_and_peak(m, n, c):
    r = tool_efficiency(m, n, c)
    assert 0.0 <= r <= 1.0
    if m == n and n >= 0:
        assert r == pytest.approx(1.0)


@PROPERTY
@given(st.integers(1, 50), smoothing)
def test_eq4_rises_then_falls_around_n(n, c):
    m = torch.arange(0, 3 * n + 5)
    r = tool_efficiency(m, torch.full_like(m, n), c)
    assert torch.all(r[1 : n + 1] > r[:n]), "rises on m < n"
    assert int(r.argmax()) == n
    assert torch.all(r[n + 1 :] < r[n:-1]), "falls for m > n"


@PROPERTY
@given(smoothing)
def test_eq4_falls_with_calls_when_n_is_zero(c):
    r = tool_efficiency(torch.arange(0, 60), torch.zeros(60), c)
    assert torch.all(r[1:] < r[:-1]) and r[0] == 1.0


def test_normalize_and_exact_match():
    assert normalize_answer("The  Eiffel Tower.") == "eiffel tower"
    assert normalize_answer("An apple, a day") == "apple day"
    assert exact_match("eiffel tower", "The Eiffel Tower!") == 1.0
    assert exact_match("Paris", ["London", "paris "]) == 1.0
    assert exact_match("Paris, France", ["Paris"]) == 0.0
    assert exact_match(None, ["Paris"]) == 0.0


@pytest.mark.parametrize(
    ("prediction", "gold", "expected"),
    [
        ("27", 27.0, True),  # AMC float gold
        ("27.0", "27", True),
        ("$\\frac{1}{2}$", "0.5", True),
        ("\\frac12", "\\frac{1}{2}", True),
        ("$\\sqrt 2$", "\\sqrt{2}", True),  # bare LaTeX gold
        ("\\boxed{3}", "3", True),
        ("3", "4", False),
        ("3.14159", "\\pi", False),
        ("}{ garbage \\frac{", "3", False),
        ("", "3", False),
        (None, "3", False),
        ("1" * 5000, "1", False),  # over the length cap
    ],
)
def test_math_equal(prediction, gold, expected):
    assert math_equal(prediction, gold) is expected


def test_math_equal_from_a_worker_thread():
    results = []
    worker = threading.Thread(target=lambda: results.append(math_equal("0.5", "\\frac{1}{2}")))
    worker.start()
    worker.join(timeout=60)
    assert results == [True]


def test_extract_answer():
    assert extract_answer("<answer>1</answer> and <answer>\n 42 \n</answer>") == "42"
    assert extract_answer("no tags here") is None
    assert extract_answer("<answer>  </answer>") is None
    assert extract_answer("so \\boxed{7}") is None  # boxed only when allowed
    assert extract_answer("so \\boxed{\\frac{1}{2}} done", allow_boxed=True) == "\\frac{1}{2}"
    assert extract_answer("\\boxed{1} then \\boxed{2}", allow_boxed=True) == "2"
    # The last \boxed is unbalanced: fall back to the previous balanced one.
    assert extract_answer("\\boxed{5} and \\boxed{6", allow_boxed=True) == "5"
    assert extract_answer("<answer>9</answer> \\boxed{8}", allow_boxed=True) == "9"
