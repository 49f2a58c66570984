"""Generators are deterministic, splits disjoint, items self-consistent, the ideal is exact."""

from __future__ import annotations

import pytest

from paretopo.testbed import calc, kbqa
from paretopo.testbed.calc import CalcDifficulty
from paretopo.testbed.kbqa import KbqaDifficulty
from paretopo.testbed.splits import Split, split_of
from paretopo.testbed.tasks import ideal_point, load_items

SPLITS = list(Split)


@pytest.mark.parametrize("split", SPLITS)
def test_calc_is_deterministic(split):
    assert calc.generate(split, 300, seed=3) == calc.generate(split, 300, seed=3)
    assert calc.generate(split, 300, seed=3) != calc.generate(split, 300, seed=4)


def test_kbqa_is_deterministic():
    for split in SPLITS:
        assert kbqa.generate(split, seed=1) == kbqa.generate(split, seed=1)
    assert kbqa.build_world(1).passages() == kbqa.build_world.__wrapped__(1).passages()
    assert kbqa.build_world(1).passages() != kbqa.build_world(2).passages()


def _canonical_calc(item: calc.CalcItem) -> str:
    return f"{item.difficulty}:{item.expression}"


def test_calc_splits_are_disjoint_even_for_commuted_questions():
    by_split = {s: calc.generate(s, 2000, seed=0) for s in SPLITS}
    questions = {s: {i.question for i in items} for s, items in by_split.items()}
    ids = {s: {i.id for i in items} for s, items in by_split.items()}
    for a, b in [
        (Split.TRAIN, Split.VALIDATION),
        (Split.TRAIN, Split.TEST),
        (Split.VALIDATION, Split.TEST),
    ]:
        assert not questions[a] & questions[b]
        assert not ids[a] & ids[b]

    # "3 + 8" in validation means neither "3 + 8" nor "8 + 3" is anywhere in train.
    def commuted(items):
        out = set()
        for i in items:
            if i.difficulty is CalcDifficulty.EASY and i.expression.split()[1] in "+*":
                a, op, b = i.expression.split()
                out.add(f"{op}{sorted([int(a), int(b)])}")
        return out

    assert not commuted(by_split[Split.TRAIN]) & commuted(by_split[Split.VALIDATION])
    assert not commuted(by_split[Split.TRAIN]) & commuted(by_split[Split.TEST])


def test_kbqa_splits_are_disjoint_and_cover_every_question():
    world = kbqa.build_world(0)
    every = {i.question for i in kbqa.all_items(world)}
    parts = [{i.question for i in kbqa.generate(s, seed=0)} for s in SPLITS]
    assert sum(len(p) for p in parts) == len(every)
    assert set().union(*parts) == every


def test_split_depends_on_the_question_only():
    # the same question asked with more items or another seed stays in its split
    small = calc.generate(Split.VALIDATION, 20, seed=0)
    for item in small:
        assert split_of(f"calc:{item.difficulty}:{_canon(item)}") is Split.VALIDATION


def _canon(item: calc.CalcItem) -> str:
    if item.difficulty is CalcDifficulty.EASY and item.expression.split()[1] in "+*":
        a, op, b = item.expression.split()
        lo, hi = sorted([int(a), int(b)])
        return f"{lo} {op} {hi}"
    return item.expression


def test_calc_items_are_self_consistent():
    items = calc.generate(Split.TRAIN, 600, seed=0)
    assert {i.difficulty for i in items} == set(CalcDifficulty)
    for item in items:
        assert item.answer == str(eval(item.expression))
        assert item.min_calls == (0 if item.difficulty is CalcDifficulty.EASY else 1)
        if item.difficulty is CalcDifficulty.MULTISTEP:
            x = eval(item.steps[0])
            assert str(eval(item.steps[1], {"x": x})) == item.answer
            assert item.question.startswith(f"Let x = {item.steps[0]}.")
        else:
            assert item.expression in item.question


def test_kbqa_items_follow_the_world_and_count_unknown_hops():
    world = kbqa.build_world(0)
    facts = {**world.country_of, **world.company_city}
    person_facts = set(world.born_in.items()) | set(world.works_for.items())
    items = kbqa.all_items(world)
    assert {i.difficulty for i in items} == set(KbqaDifficulty)
    for item in items:
        assert item.hops[-1][1] == item.answer
        assert item.min_calls == sum(not known for *_, known in item.hops)
        for entity, value, known in item.hops:
            assert facts.get(entity) == value or (entity, value) in person_facts
            # well known = every city's country and the famous companies' cities, nothing else
            assert known == (entity in world.country_of or entity in world.famous)
        expected = {
            KbqaDifficulty.KNOWN: 0,
            KbqaDifficulty.ONE_HOP: 1,
            KbqaDifficulty.TWO_HOP_PARTIAL: 1,
            KbqaDifficulty.TWO_HOP: 2,
        }
        assert item.min_calls == expected[item.difficulty]


def test_corpus_has_one_passage_per_entity_with_unique_ids():
    world = kbqa.build_world(0)
    passages = world.passages()
    assert len({p.id for p in passages}) == len(passages)
    titles = [p.title for p in passages]
    assert len(set(titles)) == len(titles)  # no two entities share a name
    n_entities = len(world.born_in) + len(world.company_city) + len(world.country_of)
    assert len(passages) == n_entities + len(set(world.country_of.values()))


@pytest.mark.parametrize("task", ["calc", "kbqa"])
@pytest.mark.parametrize("split", SPLITS)
def test_ideal_point_is_em_one_at_mean_min_calls(task, split):
    items = load_items(task, split)
    point = ideal_point(task, split)
    assert point.em == 1.0
    assert point.n_items == len(items)
    assert point.mean_calls == pytest.approx(sum(i.min_calls for i in items) / len(items))
    assert 0 < point.mean_calls < 2


def test_write_corpus_replaces_a_stale_corpus_and_keeps_a_current_one(tmp_path):
    """A corpus cached beside a search index must follow the world, or the index answers about
    entities the policy never heard of."""
    import json

    path = tmp_path / "corpus.jsonl"
    path.write_text('{"id": "old", "title": "Lorvik", "text": "Lorvik is a city."}\n')
    n = kbqa.write_corpus(path, 0)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert n == len(rows) == len(kbqa.build_world(0).passages())
    assert rows[0]["title"] == kbqa.build_world(0).passages()[0].title
    stamp = path.stat().st_mtime_ns
    kbqa.write_corpus(path, 0)
    assert path.stat().st_mtime_ns == stamp  # unchanged: an index built from it stays current


def test_names_have_fixed_widths():
    """Every copy the policy makes spans a fixed distance (see the kbqa module docstring)."""
    world = kbqa.build_world(0)
    names = [*world.country_of, *world.country_of.values(), *world.company_city, *world.born_in]
    for name in names:
        assert all(len(word) == 6 and word.isalpha() for word in name.split()), name
