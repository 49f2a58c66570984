"""The testbed's grader answers every model answer in bounded time, from any thread."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from paretopo.tasks import get_task

# What the calc warm start once answered: sympy computes this factorial for good, and math-verify's
# own time limit (SIGALRM) never fires outside the main thread. It hung `paretopo testbed eval`.
RUNAWAY_ANSWER = "77162211771!"


def test_a_runaway_answer_is_wrong_within_the_time_limit_from_a_worker_thread():
    task = get_task("calc")
    item = task.items("validation", 1)[0]
    try:
        assert task.grade(item, item.answer)  # starts the grader's child outside the timing
        verdicts: list[bool] = []
        worker = threading.Thread(target=lambda: verdicts.append(task.grade(item, RUNAWAY_ANSWER)),
                                  daemon=True)
        start = time.monotonic()
        worker.start()
        worker.join(timeout=60)
        assert verdicts == [False], "the grade never came back"
        assert time.monotonic() - start < 30
        assert task.grade(item, item.answer) and not task.grade(item, None)  # still grading
    finally:
        task.close()


def grade_workers() -> list[int]:
    """Pids of this process's math-grading children."""
    me = str(os.getpid())
    found = []
    for proc in Path("/proc").iterdir():
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:  # not a process, or it ended while we looked
            continue
        if stat.rsplit(")", 1)[1].split()[1] == me and b"_grade_worker" in cmdline:
            found.append(int(proc.name))
    return found


def test_kbqa_grades_by_exact_match_without_a_child_process():
    task = get_task("kbqa")
    item = task.items("validation", 1)[0]
    before = grade_workers()
    try:
        assert task.grade(item, item.answer) and not task.grade(item, item.answer + "x")
        assert not task.grade(item, None)
        assert grade_workers() == before  # QA needs no math child
    finally:
        task.close()


def test_calc_grading_starts_one_child_and_close_stops_it():
    task = get_task("calc")
    item = task.items("validation", 1)[0]
    before = set(grade_workers())
    assert task.grade(item, item.answer)
    assert len(set(grade_workers()) - before) == 1
    task.close()
    deadline = time.monotonic() + 10
    while set(grade_workers()) - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not set(grade_workers()) - before
