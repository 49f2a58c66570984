"""Every demonstration, replayed through the real tools, yields its recorded outputs, and a
correct answer exactly where its strategy should give one."""

from __future__ import annotations

import random
from functools import partial

import pytest

from paretopo import tasks as task_registry
from paretopo.core.rewards import tool_efficiency
from paretopo.testbed import calc, kbqa
from paretopo.testbed.calc import CalcDifficulty
from paretopo.testbed.demos import Strategy, calc_demo, kbqa_demo, sample_demos
from paretopo.testbed.kbqa import Passage
from paretopo.testbed.prompts import ANSWER_OPEN, PYTHON_OPEN, SEARCH_OPEN, render_prompt
from paretopo.testbed.sft import encode_demo
from paretopo.testbed.splits import Split
from paretopo.testbed.tasks import ideal_point, load_items
from paretopo.testbed.tokenizer import build_tokenizer
from paretopo.testbed.tools import LexicalIndex, format_information, format_output, run_python


@pytest.fixture(scope="module")
def graded():
    """r_acc as training computes it: `TestbedTask.grade`, one grader per task."""
    tasks = {name: task_registry.TestbedTask(name) for name in ("calc", "kbqa")}
    yield lambda task, answer, item: tasks[task].grade(item, answer)
    for task in tasks.values():
        task.close()


@pytest.fixture(scope="module")
def world():
    return kbqa.build_world(0)


@pytest.fixture(scope="module")
def fresh_index(world, tmp_path_factory):
    """An index rebuilt from the corpus as JSONL (what the search service would index)."""
    import json
    from dataclasses import asdict

    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    path.write_text("".join(json.dumps(asdict(p)) + "\n" for p in world.passages()))
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return LexicalIndex([Passage(**row) for row in rows])


def _all_strategies_calc():
    items = calc.generate(Split.TRAIN, 60, seed=5)
    rng = random.Random(0)
    return [calc_demo(item, s, rng) for item in items for s in Strategy]


def test_calc_demos_replay_through_a_fresh_interpreter():
    demos = _all_strategies_calc()
    assert sum(len(d.calls) for d in demos) > 100
    for demo in demos:
        for call in demo.calls:
            assert format_output(run_python(call.request)) == call.response, call.request


def test_calc_demo_answers_are_right_exactly_where_they_should_be(graded):
    items = {i.id: i for i in calc.generate(Split.TRAIN, 60, seed=5)}
    for demo in _all_strategies_calc():
        item = items[demo.item_id]
        should_be_right = demo.strategy is not Strategy.DIRECT or item.min_calls == 0
        assert demo.correct == should_be_right
        assert graded("calc", demo.answer, item) == should_be_right
        expected_calls = {Strategy.DIRECT: 0, Strategy.MINIMAL: 1}.get(demo.strategy)
        if demo.strategy is Strategy.EXTRA:
            expected_calls = item.min_calls + 1
        assert len(demo.calls) == expected_calls
        assert demo.prompt == render_prompt("calc", item.question)
        if demo.calls:  # a tool answer is what the last call printed
            assert demo.answer == run_python(demo.calls[-1].request).stdout.strip()


def test_kbqa_demos_replay_through_the_corpus(world, fresh_index, graded):
    index = LexicalIndex(world.passages())
    items = kbqa.generate(Split.TRAIN, seed=0)[:150]
    rng = random.Random(0)
    for item in items:
        for strategy in Strategy:
            demo = kbqa_demo(item, strategy, rng, world=world, index=index)
            for call in demo.calls:
                assert format_information(fresh_index.search(call.request, 1)) == call.response
            should_be_right = demo.strategy is not Strategy.DIRECT or item.min_calls == 0
            assert demo.correct == should_be_right
            assert graded("kbqa", demo.answer, item) == should_be_right
            # each searched hop's fact is in the information the search returned
            for entity, value, known in item.hops:
                if not known and demo.strategy is not Strategy.DIRECT:
                    block = next(c.response for c in demo.calls if c.request == entity)
                    assert value in block and f'Title: "{entity}"' in block


def test_minimal_demos_reach_the_ideal_point(world, graded):
    """Scored like a policy, the ideal strategy is exactly the ideal point (EM 1, min #Tool)."""
    index = LexicalIndex(world.passages())
    rng = random.Random(0)
    for task, make in (("calc", calc_demo), ("kbqa", partial(kbqa_demo, world=world, index=index))):
        items = load_items(task, Split.VALIDATION)
        demos = [make(item, Strategy.MINIMAL, rng) for item in items]
        correct = [graded(task, d.answer, item) for d, item in zip(demos, items, strict=True)]
        calls = [len(d.calls) for d in demos]
        r_tool = [float(tool_efficiency(c, item.min_calls)) for c, item in zip(calls, items,
                                                                              strict=True)]
        ideal = ideal_point(task, Split.VALIDATION)
        assert all(correct)
        assert sum(calls) / len(calls) == pytest.approx(ideal.mean_calls)
        assert sum(r_tool) / len(r_tool) == pytest.approx(1.0)


def test_an_ideal_call_copies_its_question_at_one_fixed_offset():
    """Every piece an ideal calc program takes from the question (the expression; a multistep
    item's two steps) lies the same distance back in the text: one offset per item is what the
    character-level policy learns to copy (docs/testbed.md, task `calc`)."""
    items = [i for i in calc.generate(Split.TRAIN, 300, seed=1) if i.min_calls]
    assert {i.difficulty for i in items} == {CalcDifficulty.HARD, CalcDifficulty.MULTISTEP}
    for item in items:
        demo = calc_demo(item, Strategy.MINIMAL, random.Random(0))
        code = demo.calls[0].request
        code_at = len(demo.prompt) + 1  # after the <python> tag, which is one token
        question_at = demo.prompt.index(item.question)
        offsets = {
            code_at + code.index(piece) - (question_at + item.question.index(piece))
            for piece in item.steps
        }
        assert len(offsets) == 1, (item.question, code)


def test_the_mix_makes_a_mediocre_start():
    """The warm-start data overuses tools on easy items and guesses on some hard ones."""
    demos = sample_demos(calc.generate(Split.TRAIN, 2000, seed=0), 3000, calc_demo, seed=0)
    items = {i.id: i for i in calc.generate(Split.TRAIN, 2000, seed=0)}
    easy = [d for d in demos if items[d.item_id].min_calls == 0]
    hard = [d for d in demos if items[d.item_id].min_calls == 1]
    assert 0.35 < sum(bool(d.calls) for d in easy) / len(easy) < 0.65
    assert 0.1 < sum(not d.correct for d in hard) / len(hard) < 0.3
    assert sum(len(d.calls) > 1 for d in hard) / len(hard) > 0.2


def test_loss_mask_covers_exactly_what_the_policy_writes():
    tok = build_tokenizer()
    item = calc.generate(Split.TRAIN, 40, seed=0)[-1]
    demo = calc_demo(item, Strategy.EXTRA, random.Random(0))
    ids, mask = encode_demo(demo, tok)
    assert len(ids) == len(mask)
    assert ids[-1] == tok.eos_token_id and mask[-1] == 1
    written = tok.decode(
        [i for i, m in zip(ids, mask, strict=True) if m][:-1], skip_special_tokens=False
    )
    context = tok.decode(
        [i for i, m in zip(ids, mask, strict=True) if not m], skip_special_tokens=False
    )
    assert written.startswith(PYTHON_OPEN) and ANSWER_OPEN in written
    assert "<output>" not in written and demo.prompt in context
    assert all(call.response in context for call in demo.calls)
    assert SEARCH_OPEN not in written


def test_lexical_index_ranks_like_scoring_every_passage(world):
    """The inverted lists give the ranking of the plain definition: 10 per title word matched,
    1 per text word, ties in corpus order, nothing without a shared word."""
    passages = world.passages()
    index = LexicalIndex(passages)

    def words(text):
        return set(text.lower().replace(".", " ").replace(",", " ").split())

    def reference(query, k):
        q = words(query)
        scored = [(10 * len(q & words(p.title)) + len(q & words(p.text)), -i)
                  for i, p in enumerate(passages)]
        return [passages[-i] for score, i in sorted(scored, reverse=True)[:k] if score > 0]

    rng = random.Random(0)
    vocabulary = [*sorted({w for p in passages for w in words(p.text)}), "nowhere"]
    queries = [" ".join(rng.sample(vocabulary, rng.randint(1, 4))) for _ in range(200)]
    for query in [*queries, "", "Zzz"]:
        for k in (1, 3):
            assert index.search(query, k) == reference(query, k), query
