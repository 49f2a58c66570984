"""Answer checking for r_acc: extract an agent's final answer, compare it to the gold.

Math answers are compared for equivalence with math-verify (`math_equal`), QA answers by
SQuAD-normalised exact match (`exact_match`). Library code, not the pure core: it depends on
math-verify (sympy) and, for a hard time limit, on signals (`paretopo.graders` runs it in a
child process).
"""

from __future__ import annotations

import re
import string
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from math_verify import parse, verify

__all__ = ["exact_match", "extract_answer", "math_equal", "normalize_answer"]

# Longer answers are not graded: sympy has no bound on the work a hostile expression costs,
# and outside the main thread math-verify cannot interrupt it (its timeout is SIGALRM).
MAX_MATH_ANSWER_CHARS = 1000
_MATH_TIMEOUT_S = 5


def normalize_answer(s: str) -> str:
    """SQuAD normalisation: lower-case, drop punctuation and articles, collapse white space.

    Examples
    --------
    >>> normalize_answer("  The  Eiffel-Tower! ")
    'eiffeltower'
    """
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def exact_match(prediction: str | None, golds: str | Sequence[str]) -> float:
    """1.0 if the normalised prediction equals any normalised gold answer, else 0.0.

    Examples
    --------
    >>> exact_match("the Beatles", ["Beatles", "The Fab Four"]), exact_match(None, "x")
    (1.0, 0.0)
    """
    if prediction is None:
        return 0.0
    gold_list = [golds] if isinstance(golds, str) else list(golds)
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in gold_list))


def gold_text(gold: Any) -> str:
    """A gold answer as text: an integral float (AMC's ``27.0``) is written as the integer.

    Examples
    --------
    >>> gold_text(27.0), gold_text(2.5), gold_text(" 3 ")
    ('27', '2.5', '3')
    """
    if isinstance(gold, float | np.floating) and float(gold).is_integer():
        return str(int(gold))
    return str(gold).strip()


# Kept for callers of the old private name.
_gold_text = gold_text

# Outer math delimiters an answer may come wrapped in; `\$` (an escaped dollar, a currency
# sign inside the answer) is not a delimiter.
_DELIMITERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))


def strip_math_delimiters(text: str) -> str:
    """``text`` without one outer pair of math delimiters (``$…$``, ``\\(…\\)`` …), stripped.

    Examples
    --------
    >>> strip_math_delimiters(" $x^2$ "), strip_math_delimiters("$1$ or $2$")
    ('x^2', '$1$ or $2$')
    """
    s = text.strip()
    for left, right in _DELIMITERS:
        inner = s[len(left) : len(s) - len(right)]
        if (
            len(s) >= len(left) + len(right)
            and s.startswith(left)
            and s.endswith(right)
            and not s.endswith("\\" + right)
            and left not in inner  # "$a$ and $b$" is two spans, not one wrapped answer
        ):
            return inner.strip()
    return s


def _parse(text: str, timeout: int | None) -> list[Any]:
    """Parse one answer (already extracted from a completion) with math-verify.

    An answer is read as the content of a ``\\boxed{}``: math-verify then takes the whole
    expression (a tuple, an interval, a matrix, ``3\\sqrt{13}``) instead of the first number
    it finds in bare text. Falls back to ``$…$`` and then to the raw text (unbalanced braces).
    Runs of white space are collapsed first.
    """
    if "\\boxed" in text:
        return parse(text, parsing_timeout=timeout)
    # LaTeX reads a run of white space as one space; math-verify does not always.
    inner = " ".join(strip_math_delimiters(text).split())
    for candidate in (f"\\boxed{{{inner}}}", f"${inner}$", text):
        parsed = parse(candidate, parsing_timeout=timeout)
        if parsed:
            return parsed
    return []


def math_equal(
    prediction: str | None, gold: Any, *, timeout_s: int | None = _MATH_TIMEOUT_S
) -> bool:
    """Whether ``prediction`` is mathematically equivalent to ``gold`` (math-verify).

    The gold answer is parsed first and passed first (``verify`` is asymmetric). Both are
    answers, not whole completions (see `extract_answer`); harmless rewrites (spacing,
    ``\\dfrac`` for ``\\frac``, ``$…$`` wrapping, ``27.0`` for ``27``) compare equal. Never
    raises: unparsable or over-long input (> ``MAX_MATH_ANSWER_CHARS``) is simply wrong.

    Parameters
    ----------
    timeout_s : int or None
        Seconds allowed for each parse and for the comparison (math-verify's SIGALRM
        timeouts; a timeout means "not equal"). Python only delivers SIGALRM to the main
        thread, so from any other thread the comparison runs unbounded: a caller that must
        bound it there runs it in a child process (``paretopo.graders.MathGrader``).

    Examples
    --------
    >>> math_equal("$\\\\frac{1}{2}$", "0.5"), math_equal("27", 27.0), math_equal("#@!", "3")
    (True, True, False)
    """
    if prediction is None:
        return False
    gold_str = gold_text(gold)
    if len(prediction) > MAX_MATH_ANSWER_CHARS or len(gold_str) > MAX_MATH_ANSWER_CHARS:
        return False
    in_main = threading.current_thread() is threading.main_thread()
    timeout = timeout_s if in_main and timeout_s else None
    try:
        gold_parsed = _parse(gold_str, timeout)
        pred_parsed = _parse(prediction, timeout)
        if not gold_parsed or not pred_parsed:
            return False
        return bool(verify(gold_parsed, pred_parsed, timeout_seconds=timeout))
    except Exception:
        # Any failure inside the grader (sympy, timeouts) means the answer is not verified.
        return False


_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def _last_boxed(text: str) -> str | None:
    start = text.rfind("\\boxed{")
    while start != -1:
        depth = 0
        for i in range(start + len("\\boxed"), len(text)):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                return text[start + len("\\boxed{") : i]
        # Unbalanced braces: try the previous \boxed.
        start = text.rfind("\\boxed{", 0, start)
    return None


def extract_answer(text: str, allow_boxed: bool = False) -> str | None:
    """The last ``<answer>…</answer>`` span, stripped; ``None`` when there is none.

    Parameters
    ----------
    text : str
    allow_boxed : bool
        Without an answer span, fall back to the content of the last ``\\boxed{…}`` with
        balanced braces (math tasks).

    Returns
    -------
    str or None
        An empty span counts as no answer.

    Examples
    --------
    >>> extract_answer("<answer>1</answer> then <answer> 2 </answer>")
    '2'
    >>> extract_answer("so \\\\boxed{\\\\frac{1}{2}}", allow_boxed=True)
    '\\\\frac{1}{2}'
    """
    spans = _ANSWER.findall(text)
    answer = spans[-1].strip() if spans else None
    if answer is None and allow_boxed:
        boxed = _last_boxed(text)
        answer = boxed.strip() if boxed is not None else None
    return answer or None
