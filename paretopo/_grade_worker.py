"""Child process of `paretopo.graders.MathGrader`: reads JSON lines of ``[[prediction, gold],
...]`` on stdin, writes ``1`` (equal), ``0`` (not equal) or ``T`` (not
verified within the time limit) per pair on stdout. Runs `math_equal` in its main
thread, so math-verify's own SIGALRM timeout applies; the parent kills it past that."""

from __future__ import annotations

import json
import sys
import time

from paretopo.answers import math_equal


def main() -> None:
    timeout_s = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    for line in sys.stdin:
        try:
            pairs = json.loads(line)
        except json.JSONDecodeError:
            pairs = []
        for pair in pairs:
            ok = isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str | None)
            start = time.monotonic()
            equal = ok and math_equal(pair[0], pair[1], timeout_s=timeout_s)
            # math_equal swallows its SIGALRM timeout: a long "no" is reported as a timeout.
            overran = not equal and time.monotonic() - start >= timeout_s
            sys.stdout.write("1\n" if equal else "T\n" if overran else "0\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
