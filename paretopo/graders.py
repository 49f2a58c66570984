"""Graders: is a completion's answer right? Thin dispatch over `paretopo.answers`.

The equivalence logic lives in one place, `paretopo.answers` (`math_equal`: math-verify,
gold parsed first; `exact_match`: SQuAD normalisation; `extract_answer`: ``<answer>`` then
``\\boxed{}``). This module adds what a worker needs around it:

- `extract_prediction`: the answer of a completion, per task kind.
- `MathGrader`: math equivalence with a *hard* per-comparison time limit from any thread.
  Python delivers math-verify's SIGALRM only to the main thread, and not at all while one C
  call (a huge integer power, say) runs, so comparisons run in a child process that is
  killed and replaced when one overruns. A pathological answer costs one timeout, never a
  hung worker.
- `Grader`: one entry point for both kinds (`grade(completion, golds, kind)`).
"""

from __future__ import annotations

import json
import math
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from paretopo.answers import exact_match, extract_answer, math_equal
from paretopo.datasets.records import TaskKind

__all__ = ["Grade", "Grader", "MathGrader", "extract_prediction"]

DEFAULT_TIMEOUT_S = 5.0
# The child's own SIGALRM fires at ceil(timeout); the parent kills it this much later.
_KILL_GRACE_S = 1.0
# Allowed on top for the first reply of a new child (interpreter and math-verify imports).
_STARTUP_S = 30.0


@dataclass(frozen=True, slots=True)
class Grade:
    """The verdict on one completion."""

    correct: bool
    answer: str | None  # the extracted answer; None when the completion gave none
    timed_out: bool = False  # a comparison hit the time limit (counted as wrong)


def extract_prediction(completion: str, kind: TaskKind | str) -> str | None:
    """The answer in ``completion``: the last ``<answer>`` span; for math, else the last
    ``\\boxed{}`` (ToRL answers in a box).

    Examples
    --------
    >>> extract_prediction("so \\\\boxed{12}.", "math"), extract_prediction("\\\\boxed{12}", "qa")
    ('12', None)
    """
    return extract_answer(completion, allow_boxed=TaskKind(kind) is TaskKind.MATH)


class _Worker:
    """A child Python running `paretopo._grade_worker`, spoken to in JSON lines.

    A plain subprocess rather than `multiprocessing`: no fork of a threaded parent (gRPC,
    torch), and no re-import of the caller's ``__main__`` in the child.
    """

    def __init__(self, timeout_s: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "paretopo._grade_worker", str(timeout_s)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self._buffer = b""

    def send(self, pairs: list[tuple[str | None, Any]]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(pairs).encode() + b"\n")
        self.process.stdin.flush()

    def read_line(self, timeout_s: float) -> bytes | None:
        """The next line from the child, or None when none came in time (or it died)."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 4096)
            if not chunk:  # the child exited
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()

    def close(self) -> None:
        try:
            assert self.process.stdin is not None
            self.process.stdin.close()  # EOF: the child's loop ends
            self.process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()


class MathGrader:
    """`math_equal` in a child process with a hard time limit per comparison.

    Thread-safe (calls are serialised on one child; make one grader per worker thread for
    parallelism). The child is started on first use and replaced after a timeout.

    Parameters
    ----------
    timeout_s : float
        Seconds one (prediction, gold) comparison may take, parsing included; over it the
        comparison counts as wrong and is reported as timed out.
    """

    def __init__(self, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.timeout_s = timeout_s
        self._worker: _Worker | None = None
        self._lock = threading.Lock()

    def equal_many(self, pairs: Sequence[tuple[str | None, Any]]) -> list[tuple[bool, bool]]:
        """``(equal, timed_out)`` for each ``(prediction, gold)`` pair, in order."""
        results: list[tuple[bool, bool]] = []
        pending = [(p, g) for p, g in pairs]
        with self._lock:
            while pending:
                worker = self._ensure_worker()
                try:
                    worker.send(pending)
                except OSError:  # the child died since the last call
                    worker.kill()
                    self._worker = None
                    continue
                done = self._collect(worker, len(pending), results)
                if done < len(pending):  # the comparison at `done` overran: drop the child
                    worker.kill()
                    self._worker = None
                    results.append((False, True))
                    done += 1
                pending = pending[done:]
        return results

    def equal(self, prediction: str | None, gold: Any) -> tuple[bool, bool]:
        """``(equal, timed_out)`` for one comparison."""
        return self.equal_many([(prediction, gold)])[0]

    def _collect(self, worker: _Worker, n: int, results: list[tuple[bool, bool]]) -> int:
        deadline = math.ceil(self.timeout_s) + _KILL_GRACE_S
        for i in range(n):
            # The first reply also waits for the child's start-up (imports, ~1-2 s).
            line = worker.read_line(deadline + (_STARTUP_S if i == 0 else 0.0))
            if line is None:  # overran, or died (out of memory): counted as a timeout
                return i
            reply = line.strip()
            results.append((reply == b"1", reply == b"T"))
        return n

    def _ensure_worker(self) -> _Worker:
        if self._worker is None or not self._worker.alive():
            if self._worker is not None:
                self._worker.kill()
            self._worker = _Worker(math.ceil(self.timeout_s))
        return self._worker

    def close(self) -> None:
        """Stop the child process (a later call starts a new one)."""
        with self._lock:
            if self._worker is not None:
                self._worker.close()
                self._worker = None

    def __enter__(self) -> MathGrader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Grader:
    """Grades completions of either kind: math through `MathGrader`, QA by exact match.

    ``isolate=False`` compares math in-process (faster; the time limit then holds only in
    the main thread, see `math_equal`), for offline scripts and benchmarks.
    """

    def __init__(self, *, timeout_s: float = DEFAULT_TIMEOUT_S, isolate: bool = True) -> None:
        self.timeout_s = timeout_s
        self._math = MathGrader(timeout_s=timeout_s) if isolate else None

    def check(self, answer: str | None, golds: Sequence[Any], kind: TaskKind | str) -> Grade:
        """Whether an already extracted ``answer`` matches any of ``golds``."""
        if answer is None or not golds:
            return Grade(False, answer)
        if TaskKind(kind) is TaskKind.QA:
            return Grade(exact_match(answer, [str(g) for g in golds]) == 1.0, answer)
        if self._math is None:
            secs = math.ceil(self.timeout_s)
            return Grade(any(math_equal(answer, g, timeout_s=secs) for g in golds), answer)
        timed_out = False
        for gold in golds:  # stop at the first match: most golds lists have one entry
            equal, overran = self._math.equal(answer, gold)
            timed_out |= overran
            if equal:
                return Grade(True, answer, timed_out)
        return Grade(False, answer, timed_out)

    def grade(self, completion: str, golds: Sequence[Any], kind: TaskKind | str) -> Grade:
        """Extract the answer of ``completion`` (`extract_prediction`) and check it."""
        return self.check(extract_prediction(completion, kind), golds, kind)

    def close(self) -> None:
        if self._math is not None:
            self._math.close()

    def __enter__(self) -> Grader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
