"""Task `calc`: arithmetic questions where the Python tool trades accuracy against efficiency.

Three difficulty levels (the share of each is a generator argument):

- `easy`: one one-digit operation (`7 + 5`, `9 - 4`, `6 * 8`). A small model
  answers these in its head; the ideal agent calls no tool (`min_calls = 0`).
- `hard`: a three-digit by two-digit product followed by two additions/subtractions
  (`347 * 28 - 519 + 266`). No small model does this in its head; one correct
  `<python>print(...)</python>` call solves it (`min_calls = 1`).
- `multistep`: the same arithmetic phrased as two steps (`Let x = 347 * 28. What is x - 519?`).
  It tempts one call per step, but one call that computes both is enough (`min_calls = 1`).

Every number has a fixed width within its level (one digit in easy items; three digits, two,
then three and three in the others) and hard/multistep answers have exactly five digits, so
every copy the policy makes (question -> code, tool output -> answer) spans a fixed distance in
characters. The character-level testbed policy learns such fixed-offset copying in minutes on
a CPU; with free widths it would need content-addressed copying of a 10-symbol alphabet, which
it does not learn in a CPU budget. The trade-off the task measures is unchanged.

Every item carries its ground truth (an integer, as a string), its difficulty, its minimal
number of calls and the Python statements a solver would run, one program per step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from paretopo.testbed.splits import Split, item_id, split_of

#: Digits of every hard and multistep answer.
ANSWER_DIGITS = 5

#: The generation of the items a seed gives and of their warm-start demonstrations; raised
#: whenever either changes, so that a warm start trained on other data is not reused silently
#: (`paretopo.testbed.sft.made_by_recipe`). 2: a multistep item's ideal program
#: copies the question at one offset (`demos._one_program`).
ITEMS_VERSION = 2


class CalcDifficulty(StrEnum):
    EASY = "easy"
    HARD = "hard"
    MULTISTEP = "multistep"


#: Default share of each difficulty among generated items (choice: a third each, so that both
#: "needless call" and "missing call" mistakes are common enough to measure on 100 items).
DEFAULT_MIX: dict[CalcDifficulty, float] = {
    CalcDifficulty.EASY: 1 / 3,
    CalcDifficulty.HARD: 1 / 3,
    CalcDifficulty.MULTISTEP: 1 / 3,
}


@dataclass(frozen=True)
class CalcItem:
    """One `calc` question.

    Attributes
    ----------
    id, question, answer, difficulty, min_calls
        As for every testbed item; `answer` is the exact integer result as a string.
    expression
        The whole computation as one Python expression (what one ideal call prints).
    steps
        The computation split the way the question is phrased: one expression per step, where
        a later step refers to the previous result as `x` (one element for easy/hard items).
    """

    id: str
    question: str
    answer: str
    difficulty: CalcDifficulty
    min_calls: int
    expression: str
    steps: tuple[str, ...]

    @property
    def golds(self) -> tuple[str, ...]:
        return (self.answer,)


def _easy(rng: random.Random) -> tuple[str, str, tuple[str, ...], str]:
    op = rng.choice("+-*")
    # One-digit operands: 165 distinct questions, all within what a small model learns by heart.
    a, b = rng.randint(0, 9), rng.randint(0, 9)
    if op == "-" and a < b:
        a, b = b, a  # keep easy answers non-negative
    expr = f"{a} {op} {b}"
    # a + b and b + a (likewise *) are the same question for the split: no commuted leak.
    canon = f"{min(a, b)} {op} {max(a, b)}" if op in "+*" else expr
    return f"What is {expr}?", expr, (expr,), canon


def _tail(rng: random.Random) -> str:
    return " ".join(f"{rng.choice('+-')} {rng.randint(100, 999)}" for _ in range(2))


def _product(rng: random.Random) -> str:
    return f"{rng.randint(100, 999)} * {rng.randint(10, 99)}"


def _hard(rng: random.Random) -> tuple[str, str, tuple[str, ...], str]:
    expr = f"{_product(rng)} {_tail(rng)}"
    return f"What is {expr}?", expr, (expr,), expr


def _multistep(rng: random.Random) -> tuple[str, str, tuple[str, ...], str]:
    product, tail = _product(rng), _tail(rng)
    question = f"Let x = {product}. What is x {tail}?"
    return question, f"{product} {tail}", (product, f"x {tail}"), f"{product} {tail}"


def _learnable(level: CalcDifficulty, answer: str) -> bool:
    """Hard and multistep answers have exactly five digits (see the module docstring)."""
    return level is CalcDifficulty.EASY or len(answer) == ANSWER_DIGITS


_MAKERS = {
    CalcDifficulty.EASY: _easy,
    CalcDifficulty.HARD: _hard,
    CalcDifficulty.MULTISTEP: _multistep,
}


def generate(
    split: Split | str,
    n: int,
    *,
    seed: int = 0,
    mix: dict[CalcDifficulty, float] | None = None,
) -> list[CalcItem]:
    """`n` distinct items of one split, deterministic in (`split`, `n`, `seed`, `mix`).

    Easy questions are few (165 distinct ones over all splits), so a split may hold fewer easy
    items than `mix` asks for; the generator then stops drawing them instead of looping.
    """
    split = Split(split)
    weights = mix or DEFAULT_MIX
    levels = [CalcDifficulty(k) for k in weights]
    rng = random.Random(f"calc:{seed}:{split}")
    seen: set[str] = set()
    items: list[CalcItem] = []
    misses = 0
    while len(items) < n and misses < 10_000:
        level = rng.choices(levels, weights=[weights[k] for k in levels])[0]
        question, expr, steps, canon = _MAKERS[level](rng)
        canon = f"calc:{level}:{canon}"
        answer = str(eval(expr, {"__builtins__": {}}))  # our own arithmetic, never model text
        if canon in seen or split_of(canon) != split or not _learnable(level, answer):
            misses += 1
            continue
        seen.add(canon)
        misses = 0  # count consecutive misses only: an exhausted level must not end the rest
        min_calls = 0 if level is CalcDifficulty.EASY else 1
        items.append(CalcItem(item_id(canon), question, answer, level, min_calls, expr, steps))
    return items
