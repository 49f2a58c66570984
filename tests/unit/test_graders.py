"""Graders on the real benchmark files, answer extraction, and the hard time limit."""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import pytest

from paretopo import graders
from paretopo.datasets import BENCHMARKS, TaskKind, load_benchmark, shared_data_dir
from paretopo.graders import Grade, Grader, MathGrader, extract_prediction

# Expands to tens of thousands of terms: sympy works on it for minutes, in pure Python.
ADVERSARIAL = ("(a+b+c+d+e)^{29}(a+b+c+d+e+1)", "(a+b+c+d+e)^{30}")

MATH = [n for n, b in BENCHMARKS.items() if b.kind is TaskKind.MATH]
QA = [n for n, b in BENCHMARKS.items() if b.kind is TaskKind.QA]


@pytest.fixture(scope="module")
def data_dir():
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"shared data directory {path} is absent (set PARETOPO_SHARED_DATA)")
    return path


@pytest.fixture(scope="module")
def grader():
    with Grader(isolate=False) as g:
        yield g


def _strip_dollars(gold: str) -> str:
    return gold[1:-1] if len(gold) > 1 and gold[0] == gold[-1] == "$" else gold


def harmless_rewrites(gold: str) -> dict[str, str]:
    """Answers (already extracted) that a grader must accept as the same as ``gold``."""
    inner = _strip_dollars(gold)
    return {
        "itself": gold,
        "spacing": "  " + inner.replace(" ", "  ") + " ",
        "dfrac": inner.replace("\\frac", "\\dfrac"),
        "dollars": f"${inner}$",
    }


def completions(gold: str) -> dict[str, str]:
    """Completions whose extracted answer is ``gold``."""
    inner = _strip_dollars(gold)
    return {
        "boxed": f"So the answer is $\\boxed{{{inner}}}$.",
        "answer tag": f"Done.\n<answer> {inner} </answer>",
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", MATH)
def test_every_math_gold_equals_itself_and_harmless_rewrites(data_dir, grader, name):
    failures = []
    for rec in load_benchmark(name, data_dir=data_dir):
        for how, text in harmless_rewrites(rec.golds[0]).items():
            if not grader.check(text, rec.golds, rec.kind).correct:
                failures.append((rec.id, how, text))
        for how, text in completions(rec.golds[0]).items():
            if not grader.grade(text, rec.golds, rec.kind).correct:
                failures.append((rec.id, how, text))
    assert failures == []


def test_amc_float_spelling(data_dir, grader):
    for rec in load_benchmark("amc23", data_dir=data_dir):
        assert grader.check(f"{float(rec.golds[0])}", rec.golds, "math").correct, rec.id


@pytest.mark.parametrize("name", ["aime24", "aime25", "amc23", "math500"])
def test_integer_answers_off_by_one_are_wrong(data_dir, grader, name):
    records = load_benchmark(name, data_dir=data_dir)
    integers = [r for r in records if re.fullmatch(r"\d+", r.golds[0])]
    assert integers
    for rec in integers:
        wrong = str(int(rec.golds[0]) + 1)
        assert not grader.grade(f"\\boxed{{{wrong}}}", rec.golds, "math").correct, rec.id


# (gold as in the file, a wrong answer a model might give)
KNOWN_WRONG = [
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "\\left( 3, \\frac{\\pi}{3} \\right)"),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "3"),
    ("\\frac{14}{3}", "\\frac{3}{14}"),
    ("p - q", "q - p"),
    ("3\\sqrt{13}", "\\sqrt{39}"),
    ("6 - 5i", "6 + 5i"),
    ("\\begin{pmatrix} -1/3 \\\\ 2/3 \\\\ 5/3 \\end{pmatrix}",
     "\\begin{pmatrix} 1/3 \\\\ 2/3 \\\\ 5/3 \\end{pmatrix}"),
    ("(3,4]", "[3,4]"),
    ("$2^{1009}$", "2^{1008}"),
    ("$\\frac{1}{2 n+2}$", "\\frac{1}{2n+1}"),
    ("$2n-2$", "2n"),
    ("$(1,8,19), (2,7,13), (4,5,7)$", "(1,8,19), (2,7,13)"),
    ("27", "27.5"),
    ("\\text{Evelyn}", "\\text{Bob}"),
    ("90^\\circ", "45^\\circ"),
]


@pytest.mark.parametrize(("gold", "wrong"), KNOWN_WRONG)
def test_known_wrong_answers_are_wrong(grader, gold, wrong):
    assert grader.check(gold, [gold], "math").correct  # the gold itself is right …
    assert not grader.check(wrong, [gold], "math").correct  # … and this is not


def test_known_wrong_golds_exist_in_the_files(data_dir):
    golds = {g for n in MATH for r in load_benchmark(n, data_dir=data_dir) for g in r.golds}
    assert {gold for gold, _ in KNOWN_WRONG} <= golds


@pytest.mark.parametrize("name", QA)
def test_every_qa_gold_matches_itself_normalised_and_not_another(data_dir, grader, name):
    records = load_benchmark(name, data_dir=data_dir)
    for rec, other in zip(records, records[1:] + records[:1], strict=True):
        for gold in rec.golds:
            assert grader.check(gold, rec.golds, "qa").correct
            assert grader.grade(f"<answer> The {gold.upper()}. </answer>", rec.golds, "qa").correct
        clash = {g.lower() for g in other.golds} & {g.lower() for g in rec.golds}
        if not clash:
            assert not grader.check(other.golds[0], rec.golds, "qa").correct, rec.id


def test_extraction_per_kind():
    assert extract_prediction("x <answer>12</answer> \\boxed{3}", "math") == "12"
    assert extract_prediction("so \\boxed{\\frac{1}{2}}.", "math") == "\\frac{1}{2}"
    assert extract_prediction("so \\boxed{Paris}.", "qa") is None
    assert extract_prediction("<answer> Paris </answer>", "qa") == "Paris"
    assert Grader(isolate=False).grade("no answer at all", ["3"], "math") == Grade(False, None)


def test_isolated_grader_grades_like_the_core(data_dir):
    records = load_benchmark("math500", data_dir=data_dir, limit=20)
    with Grader() as isolated:
        for rec in records:
            assert isolated.check(rec.golds[0], rec.golds, "math") == Grade(True, rec.golds[0])
            assert not isolated.check("-12345", rec.golds, "math").correct


def test_adversarial_expression_is_cut_off_in_a_worker_thread():
    """From a thread math-verify has no timeout at all; the child process enforces one."""
    results: list[tuple[bool, bool]] = []
    with MathGrader(timeout_s=1) as g:
        g.equal("1", "1")  # start the child outside the timed part
        worker = threading.Thread(target=lambda: results.append(g.equal(*ADVERSARIAL)))
        start = time.monotonic()
        worker.start()
        worker.join(timeout=30)
        elapsed = time.monotonic() - start
        assert results == [(False, True)]
        assert elapsed < 1 + graders._KILL_GRACE_S + 1.0
        assert g.equal("2", "2") == (True, False)  # and the grader still works


def test_overrunning_child_is_killed_and_replaced(monkeypatch):
    # A deadline shorter than the child's own SIGALRM: the parent must kill it.
    monkeypatch.setattr(graders, "_KILL_GRACE_S", -0.8)
    with MathGrader(timeout_s=1) as g:
        assert g.equal("1", "1") == (True, False)
        first = g._worker.process.pid
        start = time.monotonic()
        out = g.equal_many([("2", "2"), ADVERSARIAL, ("3", "3"), ("4", "5")])
        assert time.monotonic() - start < 5
        assert out == [(True, False), (False, True), (True, False), (False, False)]
        assert g._worker.process.pid != first


def test_dead_child_is_replaced():
    with MathGrader(timeout_s=2) as g:
        assert g.equal("1", "1") == (True, False)
        os.kill(g._worker.process.pid, signal.SIGKILL)
        g._worker.process.wait()
        assert g.equal("\\frac{1}{2}", "0.5") == (True, False)


def test_bad_timeout_is_refused():
    with pytest.raises(ValueError, match="timeout_s must be > 0"):
        MathGrader(timeout_s=0)
