"""A dense build killed with SIGKILL mid-way resumes from its last whole shard and ends with
the same files as a build that ran through (real builder processes, real MiniLM, one torch
thread so the embeddings are reproducible bit for bit)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from search_servers import CORPUS, build

pytestmark = pytest.mark.slow

PASSAGES, SHARD_ROWS = 60, 10  # six shards
FLAGS = ("--backend", "dense", "--model", "all-MiniLM-L6-v2", "--device", "cpu",
         "--shard-rows", str(SHARD_ROWS), "--torch-threads", "1", "--batch-size", "16")
TIMING = {"build_seconds", "created_unix"}


def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.jsonl"
    path.write_bytes(b"".join(CORPUS.read_bytes().splitlines(keepends=True)[:PASSAGES]))
    return path


def shards_done(partial: Path) -> int:
    try:
        return json.loads((partial / "progress.json").read_text()).get("shards_done", 0)
    except (FileNotFoundError, json.JSONDecodeError):  # not written yet, or mid-replace
        return 0


def kill_mid_build(src: Path, out: Path) -> int:
    """Start the builder, SIGKILL it once two shards are whole; the count it had then."""
    cmd = [sys.executable, "-m", "services.tools.search.build_index", "--corpus", str(src),
           "--out", str(out), "--no-progress", *FLAGS]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    partial = out.with_name(f".{out.name}.partial")
    deadline = time.monotonic() + 240
    try:
        while shards_done(partial) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        done = shards_done(partial)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    return done


def files(index_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(index_dir)): p.read_bytes()
            for p in sorted(index_dir.rglob("*")) if p.is_file()}


def test_killed_build_resumes_to_identical_files(tmp_path) -> None:
    src = corpus(tmp_path)
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    done = kill_mid_build(src, killed)
    assert 2 <= done < PASSAGES // SHARD_ROWS, f"killed after {done} shards: not mid-build"
    assert not killed.exists()  # no manifest, no index: only the partial directory
    partial = killed.with_name(".killed.partial")
    assert shards_done(partial) >= done

    resumed = build(src, killed, *FLAGS)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {partial}: passage store written, {done}" in \
        " ".join(resumed.stderr.split())
    assert not partial.exists()
    through = build(src, straight, *FLAGS)
    assert through.returncode == 0, through.stderr

    a, b = files(killed), files(straight)
    assert sorted(a) == sorted(b) == sorted(
        ["manifest.json", "offsets.npy", "passages.jsonl"]
        + [f"emb/{i:05d}.npy" for i in range(PASSAGES // SHARD_ROWS)])
    assert all(a[name] == b[name] for name in a if name != "manifest.json")
    ma, mb = (json.loads(m["manifest.json"]) for m in (a, b))
    assert {k: v for k, v in ma.items() if k not in TIMING} == \
        {k: v for k, v in mb.items() if k not in TIMING}
