"""Warm-start demonstrations: the exact text the policy sees, with real tool outputs inserted.

A demonstration follows one of three strategies, mixed so the warm-start policy is mediocre on
both objectives, like a base model that uses tools whether or not they are needed:

- `direct`: answer at once. Right on items that need no tool, a plausible wrong guess on the
  others (a base model's confident arithmetic slip or hallucinated entity).
- `minimal`: the ideal: exactly `min_calls` calls, then the right answer (only for items
  that need a call; for the others it is `direct`).
- `extra`: one call more than needed, then the right answer: a needless call on an easy
  item, a product computed first and then the whole expression, a multistep item solved one
  step per call, a search that re-checks a well-known fact or the answer.

Tool outputs are real: `calc` code runs with Python semantics (`tools.exec_trusted`, proven
equal to a fresh interpreter by a test) and `kbqa` information comes from the lexical index
over the generated corpus (the live system queries the search service instead).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from paretopo.testbed.calc import CalcDifficulty, CalcItem
from paretopo.testbed.kbqa import KbqaItem, World
from paretopo.testbed.prompts import (
    ANSWER_CLOSE,
    ANSWER_OPEN,
    PYTHON_CLOSE,
    PYTHON_OPEN,
    SEARCH_CLOSE,
    SEARCH_OPEN,
    TaskName,
    render_prompt,
)
from paretopo.testbed.tools import (
    SEARCH_TOP_K,
    LexicalIndex,
    PythonResult,
    exec_trusted,
    format_information,
    format_output,
)


class Strategy(StrEnum):
    DIRECT = "direct"
    MINIMAL = "minimal"
    EXTRA = "extra"


#: Default strategy mix by the item's minimal number of calls (choice: tuned so that the
#: warm-start policy overuses tools on easy items and guesses on a fifth of the hard ones).
DEFAULT_MIX: dict[int, dict[Strategy, float]] = {
    0: {Strategy.DIRECT: 0.5, Strategy.EXTRA: 0.5},
    1: {Strategy.DIRECT: 0.2, Strategy.MINIMAL: 0.45, Strategy.EXTRA: 0.35},
    2: {Strategy.DIRECT: 0.2, Strategy.MINIMAL: 0.5, Strategy.EXTRA: 0.3},
}


@dataclass(frozen=True)
class Segment:
    """A piece of a trajectory; `generated` is True where the policy wrote it (loss on)."""

    text: str
    generated: bool


@dataclass(frozen=True)
class ToolCall:
    """One call: the code or query, and the exact block the tool put into the context."""

    request: str
    response: str


@dataclass(frozen=True)
class Demo:
    task: TaskName
    item_id: str
    strategy: Strategy
    prompt: str
    segments: tuple[Segment, ...]
    calls: tuple[ToolCall, ...]
    answer: str
    correct: bool

    @property
    def completion(self) -> str:
        return "".join(s.text for s in self.segments)

    @property
    def text(self) -> str:
        return self.prompt + self.completion


def _finish(
    task: TaskName,
    item_id: str,
    strategy: Strategy,
    prompt: str,
    calls: list[tuple[str, str, str]],
    answer: str,
    gold: str,
) -> Demo:
    """Assemble a demo from (open+request+close as generated, request, tool block) triples."""
    segments: list[Segment] = []
    for generated, _, block in calls:
        segments += [Segment(generated, True), Segment(block, False)]
    segments.append(Segment(f"{ANSWER_OPEN}{answer}{ANSWER_CLOSE}", True))
    return Demo(
        task,
        item_id,
        strategy,
        prompt,
        tuple(segments),
        tuple(ToolCall(request, block) for _, request, block in calls),
        answer,
        answer == gold,
    )


def _wrong_number(answer: str, rng: random.Random) -> str:
    """A plausible slip: one digit changed (never the leading one to 0), so never the answer."""
    digits = list(answer.lstrip("-"))
    pos = rng.randrange(len(digits))
    choices = [d for d in "0123456789" if d != digits[pos] and not (pos == 0 and d == "0")]
    digits[pos] = rng.choice(choices)
    return ("-" if answer.startswith("-") else "") + "".join(digits)


def calc_demo(item: CalcItem, strategy: Strategy, rng: random.Random) -> Demo:
    """One `calc` demonstration of `item` following `strategy`."""
    prompt = render_prompt(TaskName.CALC, item.question)
    if strategy is Strategy.DIRECT or (strategy is Strategy.MINIMAL and item.min_calls == 0):
        guess = item.answer if item.min_calls == 0 else _wrong_number(item.answer, rng)
        return _finish(TaskName.CALC, item.id, Strategy.DIRECT, prompt, [], guess, item.answer)
    if strategy is Strategy.MINIMAL:
        programs = [_one_program(item)]
    elif item.difficulty is CalcDifficulty.EASY:
        programs = [f"print({item.expression})"]
    else:
        # Two calls: the product first (the multistep question's own first step), then the rest
        # with the printed product pasted in, as a step-by-step solver does.
        a, op, b, tail = item.expression.split(" ", 3)
        first = f"print({a} {op} {b})"
        programs = [first, f"print({exec_trusted(first).strip()} {tail})"]
    calls = [
        (f"{PYTHON_OPEN}{p}{PYTHON_CLOSE}", p, format_output(PythonResult(exec_trusted(p), "")))
        for p in programs
    ]
    answer = exec_trusted(programs[-1]).strip()
    return _finish(TaskName.CALC, item.id, strategy, prompt, calls, answer, item.answer)


#: Between a multistep program's two statements: as long as ". What is " between the
#: question's two steps, so the whole program copies the question at one fixed offset.
_MULTISTEP_JOIN = "\nresult = "


def _one_program(item: CalcItem) -> str:
    if len(item.steps) > 1:  # multistep, solved in one call that names x like the question
        return f"x = {item.steps[0]}{_MULTISTEP_JOIN}{item.steps[1]}\nprint(result)"
    return f"print({item.expression})"


def _entities_like(world: World, answer: str) -> list[str]:
    """Every entity of the same kind as `answer` (the pool a wrong guess is drawn from)."""
    for pool in (world.country_of.values(), world.country_of.keys(), world.company_city.keys()):
        if answer in pool:
            return sorted(set(pool))
    raise ValueError(f"{answer!r} is not an answer this world produces")


def kbqa_demo(
    item: KbqaItem,
    strategy: Strategy,
    rng: random.Random,
    *,
    world: World,
    index: LexicalIndex,
    top_k: int = SEARCH_TOP_K,
) -> Demo:
    """One `kbqa` demonstration of `item` following `strategy` (searches return `top_k`)."""
    prompt = render_prompt(TaskName.KBQA, item.question)
    if strategy is Strategy.DIRECT or (strategy is Strategy.MINIMAL and item.min_calls == 0):
        guess = item.answer
        if item.min_calls > 0:
            guess = rng.choice([e for e in _entities_like(world, item.answer) if e != item.answer])
        return _finish(TaskName.KBQA, item.id, Strategy.DIRECT, prompt, [], guess, item.answer)
    queries = [entity for entity, _, known in item.hops if not known]
    if strategy is Strategy.EXTRA:
        known = [entity for entity, _, is_known in item.hops if is_known]
        # Re-check a well-known fact where there is one, else look the answer itself up.
        queries.append(known[0] if known else item.answer)
    calls = [
        (f"{SEARCH_OPEN}{q}{SEARCH_CLOSE}", q, format_information(index.search(q, top_k)))
        for q in queries
    ]
    return _finish(TaskName.KBQA, item.id, strategy, prompt, calls, item.answer, item.answer)


def sample_demos(
    items: Sequence[CalcItem] | Sequence[KbqaItem],
    n: int,
    make: Callable[[object, Strategy, random.Random], Demo],
    *,
    seed: int = 0,
    mix: dict[int, dict[Strategy, float]] | None = None,
    difficulty_weights: dict[str, float] | None = None,
) -> list[Demo]:
    """`n` demonstrations: an item (its difficulty drawn by `difficulty_weights`, uniform by
    default), then a strategy drawn from `mix` for its `min_calls`. Items repeat with fresh
    strategy draws, which is how the warm-start data teaches inconsistent tool use."""
    rng = random.Random(f"demos:{seed}")
    table = mix or DEFAULT_MIX
    by_level: dict[str, list] = {}
    for item in items:
        by_level.setdefault(str(item.difficulty), []).append(item)
    levels = sorted(by_level)
    weights = [(difficulty_weights or {}).get(level, 1.0) for level in levels]
    demos = []
    for _ in range(n):
        item = rng.choice(by_level[rng.choices(levels, weights=weights)[0]])
        options = table[item.min_calls]
        strategy = rng.choices(list(options), weights=list(options.values()))[0]
        demos.append(make(item, strategy, rng))
    return demos
