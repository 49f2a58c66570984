"""The tool services an evaluation talks to: given targets, a running local stack's, or
servers started here (and stopped when the evaluation ends).

Order per tool: an explicit ``host:port`` wins; else the stack recorded by `paretopo up`
(`<stack home>/stack.json`) when it still runs: its executor always, its search only for
`testbed-kbqa` (the stack indexes the testbed corpus, not Wikipedia); else a child process
started here: an executor, or a search server over ``search_index`` or over a BM25 index it
builds once (and reuses) of the benchmark's corpus (the testbed kbqa world, or the shared
Wikipedia-2018 passage sample).
"""

from __future__ import annotations

from pathlib import Path

from paretopo.datasets.registry import WIKI18_SAMPLE, shared_data_dir
from paretopo.process import ManagedProcess

DEFAULT_STACK_HOME = Path("runs/stack")


class ToolServices:
    """Resolve (and start when needed) the executor and search targets; a context manager."""

    def __init__(self, work_dir: Path, *, executor: str | None = None, search: str | None = None,
                 search_index: Path | None = None, stack_home: Path | None = DEFAULT_STACK_HOME,
                 executor_workers: int = 2, data_dir: Path | None = None,
                 world_seed: int = 0) -> None:
        from paretopo.app.stack import running_stack

        self.work_dir = work_dir
        self.stack = running_stack(stack_home) if stack_home is not None else None
        self._executor = executor or (self.stack.executor if self.stack else None)
        self._search = search
        self._search_index = search_index
        self._workers = executor_workers
        self._data_dir = data_dir
        self._world_seed = world_seed  # the kbqa world whose corpus testbed-kbqa searches
        self._searches: dict[Path, str] = {}  # index dir -> target of a server started here
        self._procs: list[ManagedProcess] = []

    def executor(self) -> str:
        """The executor target, starting a local executor on first use when there is none."""
        if self._executor is None:
            from paretopo.app.evaluation import start_local_executor

            proc, self._executor = start_local_executor(self.work_dir, workers=self._workers)
            self._procs.append(proc)
        return self._executor

    def search(self, benchmark: str) -> str:
        """The search target for `benchmark`, starting a local server when there is none."""
        if self._search is not None:
            return self._search
        if self.stack is not None and benchmark == "testbed-kbqa" and self._world_seed == 0:
            return self.stack.search
        index = self._search_index or self._default_index(benchmark)
        if index not in self._searches:
            self._searches[index] = self._start_search(index)
        return self._searches[index]

    def _default_index(self, benchmark: str) -> Path:
        from services.tools.search.index import BuildOptions, build_index, is_current

        if benchmark == "testbed-kbqa":
            from paretopo.testbed.kbqa import write_corpus

            corpus = self.work_dir / f"kbqa-corpus-seed{self._world_seed}.jsonl"
            write_corpus(corpus, self._world_seed)
        else:
            corpus = (self._data_dir or shared_data_dir()) / WIKI18_SAMPLE
        out, options = self.work_dir / "indexes" / f"bm25-{corpus.stem}", BuildOptions()
        if not is_current(out, corpus, options):
            build_index(corpus, out, options)
        return out

    def _start_search(self, index: Path) -> str:
        from paretopo.healthcheck import grpc_serving
        from paretopo.netutil import free_port

        port, metrics_port = free_port(), free_port()
        proc = ManagedProcess.python_module(
            "search", "services.tools.search", "--index-dir", str(index), "--port", str(port),
            "--metrics-port", str(metrics_port),
            log_path=self.work_dir / f"search-{index.name}.log")
        self._procs.append(proc.start())
        target = f"127.0.0.1:{port}"
        proc.wait_until(lambda: grpc_serving(target), timeout=120)
        return target

    def close(self) -> None:
        """Stop every server started here (newest first)."""
        while self._procs:
            self._procs.pop().stop()

    def __enter__(self) -> ToolServices:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
