"""The executor's two benchmarks, run as a user runs them but tiny: the scripts the numbers in
BENCHMARKS.md come from cannot rot. Each starts a real executor server and cleans it up; the
figures themselves are not judged here (speed is measured in benchmarks, not in tests), only
that every row is there and is a rate."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def run_benchmark(name: str, *args: str) -> str:
    """Run a benchmark script in its own process group; should it hang, the whole group
    (its servers too) is killed, not only the script."""
    proc = subprocess.Popen([sys.executable, str(REPO / "benchmarks" / name), *args],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=600)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == 0, err[-3000:]
    return out


def table_rates(text: str) -> dict[str, float]:
    """Row name -> calls/s of each Markdown table row. In both tables calls/s is the third
    cell from the right (a name may itself hold a "|")."""
    rates = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 4 and re.fullmatch(r"[\d.]+", cells[-3]):
            rates[" | ".join(cells[:-3])] = float(cells[-3])
    return rates


def test_bench_executor_floor_reports_every_part_against_the_fresh_interpreter():
    out = run_benchmark("bench_executor_floor.py", "--workers", "2", "--rounds", "2",
                        "--calls", "10")
    rates = table_rates(out)
    assert set(rates) == {"executor", "transport", "fork", "fresh", "ceiling"}, out
    assert all(rate > 0 for rate in rates.values()), rates
    summary = json.loads(out.strip().splitlines()[-1])["median_ratio_to_fresh"]
    assert summary["fresh"] == 1.0 and summary["executor"] > 0, summary
    assert "CPU per call above transport + fork" in out


def test_bench_executor_reports_the_interleaved_ratio(tmp_path):
    table = tmp_path / "table.md"
    out = run_benchmark("bench_executor.py", "--workers", "2", "--calls", "10",
                        "--rounds", "2", "--out", str(table))
    rates = table_rates(table.read_text())
    assert len(rates) == 10 and all(rate > 0 for rate in rates.values()), rates
    assert re.search(r"interleaved over 2 rounds: median [\d.]+x fresh interpreter", out), out
