"""The testbed's own tools: a Python runner and a lexical search over the generated corpus.

They give demonstrations their tool outputs and let `evaluate.py` run a policy without any
service. The live system calls the sandboxed executor and the search service over gRPC instead
(`services/tools`); these stand-ins keep the same semantics where it matters for the testbed:

- `run_python` runs code in a fresh `python -I` subprocess with a time limit: real Python,
  isolated from this process's state, but not a sandbox (no memory, network or file-system
  limits). It is only ever given the testbed's own tiny policy's code.
- `LexicalIndex.search` ranks passages by word overlap with the query, titles first: a small
  stand-in for top-k retrieval that always finds an entity's own passage from its exact name.

Tool results are wrapped by `paretopo.tools_format`, the one place the rollout service and the
search service use too, so demonstrations, evaluation and the live system show the policy the
same text.
"""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from paretopo.testbed.kbqa import Passage
from paretopo.tools_format import format_passages, wrap_information, wrap_output

#: Longest tool output kept in the context, in characters (the policy's context is short).
MAX_OUTPUT_CHARS = 200

#: Passages one testbed search returns: what the warm start learns to read, so SFT, the
#: rollout workers (through the task) and `paretopo testbed eval` must all use it.
SEARCH_TOP_K = 1


@dataclass(frozen=True)
class PythonResult:
    stdout: str
    error: str  # last line of the traceback, or "timed out"; "" on success

    @property
    def text(self) -> str:
        """What the policy sees: the printed output, or the error when the program failed."""
        return self.stdout if not self.error else f"{self.stdout}{self.error}"


def run_python(code: str, *, timeout_s: float = 5.0) -> PythonResult:
    """Run `code` in a fresh isolated interpreter and return what it printed."""
    try:
        proc = subprocess.run(
            [sys.executable, "-I", "-S", "-c", code],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return PythonResult(out, "timed out")
    lines = proc.stderr.strip().splitlines()
    error = lines[-1] if proc.returncode != 0 and lines else ""
    return PythonResult(proc.stdout, error)


def exec_trusted(code: str) -> str:
    """Run code the testbed wrote itself (demonstrations), in-process, and return its stdout.

    Same language semantics as `run_python` (a test replays every demonstration through
    `run_python` to prove it), without paying an interpreter start per demonstration.
    """
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        exec(code, {"__builtins__": __builtins__})
    return buffer.getvalue()


_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


class LexicalIndex:
    """Top-k passages by word overlap: each title word matched counts 10, each text word 1.

    Inverted lists keep a query's cost to the passages it shares a word with (warm-start data
    runs thousands of searches over the corpus)."""

    def __init__(self, passages: Sequence[Passage]) -> None:
        self._passages = list(passages)
        self._postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for i, p in enumerate(self._passages):
            title, text = _words(p.title), _words(p.text)
            for word in title | text:
                self._postings[word].append((i, 10 * (word in title) + (word in text)))

    def search(self, query: str, k: int = 1) -> list[Passage]:
        scores: dict[int, int] = defaultdict(int)
        for word in _words(query):
            for i, weight in self._postings.get(word, ()):
                scores[i] += weight
        # highest score first; ties keep corpus order, so results are deterministic
        ranked = sorted(scores.items(), key=lambda s: (-s[1], s[0]))
        return [self._passages[i] for i, score in ranked[:k] if score > 0]


def format_output(result: PythonResult) -> str:
    """The `<output>` block for a Python result (long output cut to `MAX_OUTPUT_CHARS`)."""
    return wrap_output(result.text[:MAX_OUTPUT_CHARS])


def format_information(passages: Sequence[Passage]) -> str:
    """The `<information>` block for search results (Search-R1 `Doc i(Title: ...)` lines)."""
    return wrap_information(format_passages(passages))
