"""The search server as a process: refusing to start without its index, configuration from
environment and flags, graceful SIGTERM, and the dense backend end to end."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import pytest
from search_servers import start_search

from paretopo.netutil import free_port
from paretopo.v1 import search_pb2

pytestmark = pytest.mark.slow


def run_server(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the server expecting it to refuse to start (it exits before binding)."""
    return subprocess.run([sys.executable, "-m", "services.tools.search", "--port",
                           str(free_port()), *args], capture_output=True, text=True,
                          timeout=120, check=False, env={**os.environ, **(env or {})})


def test_missing_index_directory_names_the_manifest(tmp_path) -> None:
    result = run_server("--index-dir", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert f"{tmp_path / 'nowhere' / 'manifest.json'}" in result.stderr


def test_missing_index_file_names_it(bm25_index, tmp_path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(bm25_index, broken)
    (broken / "bm25" / "indices.csc.index.npy").unlink()
    result = run_server("--index-dir", str(broken))
    assert result.returncode == 2
    assert str(broken / "bm25" / "indices.csc.index.npy") in result.stderr


def test_bad_configuration_is_refused() -> None:
    result = run_server(env={"PARETOPO_SEARCH_INDEX_DIR": "/x",
                             "PARETOPO_SEARCH_MAX_TOP_K": "2"})
    assert result.returncode == 2 and "default_top_k=3 exceeds max_top_k=2" in result.stderr


def test_environment_configures_and_flags_override(bm25_index, tmp_path) -> None:
    env = {"PARETOPO_SEARCH_MAX_TOP_K": "5", "PARETOPO_SEARCH_MAX_QUERIES": "4",
           "PARETOPO_SEARCH_DEFAULT_TOP_K": "2"}
    server = start_search(bm25_index, tmp_path, "--max-top-k", "7", env=env)
    try:
        d = server.stub().Describe(search_pb2.DescribeRequest(), timeout=10)
        assert (d.max_top_k, d.max_queries, d.default_top_k) == (7, 4, 2)
        [result] = server.stub().Search(search_pb2.SearchRequest(queries=["jazz"]),
                                        timeout=10).results
        assert len(result.passages) == 2
    finally:
        server.process.stop()


def test_sigterm_stops_gracefully(bm25_index, tmp_path) -> None:
    server = start_search(bm25_index, tmp_path)
    try:
        popen = server.process.popen
        popen.send_signal(signal.SIGTERM)
        assert popen.wait(timeout=30) == 0
        assert "stopping gRPC server" in server.process.log_tail()
    finally:
        server.process.stop()


def test_dense_server_answers(dense_index, tmp_path) -> None:
    server = start_search(dense_index, tmp_path, "--device", "cpu", "--faiss-gpu", "off",
                          "--torch-threads", "1")
    try:
        stub = server.stub()
        d = stub.Describe(search_pb2.DescribeRequest(), timeout=10)
        assert (d.backend, d.model, d.num_passages) == (search_pb2.BACKEND_DENSE,
                                                        "all-MiniLM-L6-v2", 300)
        reply = stub.Search(search_pb2.SearchRequest(
            queries=["who told the story of the prodigal son", "bat masterson tombstone actor"],
            top_k=3), timeout=60)
        prodigal = reply.results[0]
        assert prodigal.passages[0].title == "Parable of the Prodigal Son"
        assert all(-1.0 <= p.score <= 1.0 for r in reply.results for p in r.passages)
        assert prodigal.formatted.startswith('<information>Doc 1(Title: "Parable of the')
    finally:
        server.process.stop()
