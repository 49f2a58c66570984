"""Every loader on the real benchmark files: counts, ids, golds and questions."""

from __future__ import annotations

import json

import pytest

from paretopo.datasets import (
    BENCHMARKS,
    WIKI18_SAMPLE,
    Record,
    TaskKind,
    load_benchmark,
    load_file,
    load_passages,
)

# Row counts from SOURCES.md.
EXPECTED_ROWS = {
    "math500": 500,
    "aime24": 30,
    "aime25": 30,
    "amc23": 40,
    "olympiadbench": 675,
    "torl_test": 374,
    "nq": 1000,
    "hotpotqa": 200,
}


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_benchmark_loads_every_row(data_dir, name):
    records = load_benchmark(name, data_dir=data_dir)
    assert len(records) == EXPECTED_ROWS[name]
    assert all(isinstance(r, Record) for r in records)
    assert {r.kind for r in records} == {BENCHMARKS[name].kind}
    assert {r.source for r in records} == {name}
    assert all(r.id.startswith(f"{name}/") for r in records)
    assert all(r.question.strip() == r.question and r.question for r in records)
    assert all(r.golds and all(g.strip() == g and g for g in r.golds) for r in records)


def test_ids_are_unique_where_the_files_have_ids(data_dir):
    for name in ("math500", "aime24", "aime25", "amc23", "olympiadbench", "nq", "hotpotqa"):
        ids = [r.id for r in load_benchmark(name, data_dir=data_dir)]
        assert len(set(ids)) == len(ids), name


def test_amc_float_answers_become_integers(data_dir):
    raw = [json.loads(line) for line in (data_dir / "math/amc23.jsonl").open()]
    assert all(isinstance(r["answer"], float) for r in raw)
    records = load_benchmark("amc23", data_dir=data_dir)
    assert records[0].golds == ["27"]  # 27.0 in the file
    for rec, row in zip(records, raw, strict=True):
        if row["answer"].is_integer():
            assert rec.golds == [str(int(row["answer"]))]


def test_math500_keeps_latex_answers_and_unique_ids(data_dir):
    first = load_benchmark("math500", data_dir=data_dir)[0]
    assert first.id == "math500/test/precalculus/807.json"
    assert first.golds == ["\\left( 3, \\frac{\\pi}{2} \\right)"]


def test_qa_golden_answers_lists_and_plain_answer_lists(data_dir):
    nq = load_benchmark("nq", data_dir=data_dir)
    multi = next(r for r in nq if r.id == "nq/test_2349")
    assert multi.golds == ["Germany", "hosted by Brazil", "won by Germany", "Estádio do Maracanã"]
    hotpot = load_benchmark("hotpotqa", data_dir=data_dir)
    assert hotpot[0].golds == ["Frank Lowy"]
    assert hotpot[0].id == "hotpotqa/1"  # no id in the file: the line number


def test_torl_parquet_question_is_the_user_message(data_dir):
    records = load_benchmark("torl_test", data_dir=data_dir)
    aime = [r for r in records if r.question.startswith("Every morning Aya")]
    assert len(aime) == 4  # ToRL repeats each AIME problem 4 times
    assert {r.golds[0] for r in aime} == {"204"}
    assert not any(r.question.startswith("Please reason step by step") for r in records)


def test_limit_and_file_path(data_dir):
    assert len(load_benchmark("olympiadbench", data_dir=data_dir, limit=7)) == 7
    by_path = load_file(data_dir / "qa/nq_test_sample1000.jsonl", limit=3)
    assert [r.kind for r in by_path] == [TaskKind.QA] * 3  # golden_answers → qa
    assert by_path[0].source == "nq_test_sample1000"


def test_passage_corpus(data_dir):
    passages = list(load_passages(data_dir / WIKI18_SAMPLE))
    assert len(passages) == 9654
    assert passages[0].id == "wiki18-00000" and passages[0].title == "Citibank"
    assert all(p.text or p.title for p in passages)
