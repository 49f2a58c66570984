"""The paper's benchmarks by name, and where their files live.

Files are read from the shared data directory: env ``PARETOPO_SHARED_DATA``, default
``<repo>/../shared/data`` (``SOURCES.md`` there says where each file comes from).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from paretopo.datasets.loaders import load_jsonl, load_verl_parquet
from paretopo.datasets.records import DatasetError, Record, TaskKind

ENV_DATA_DIR = "PARETOPO_SHARED_DATA"


@dataclass(frozen=True)
class Benchmark:
    """A named benchmark file under the shared data directory."""

    name: str
    path: str  # relative to the data directory
    kind: TaskKind
    tool_format: str  # the agent format it is evaluated with (paretopo.agent_formats)


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark("math500", "math/math500.jsonl", TaskKind.MATH, "torl"),
        Benchmark("aime24", "math/aime24.jsonl", TaskKind.MATH, "torl"),
        Benchmark("aime25", "math/aime25.jsonl", TaskKind.MATH, "torl"),
        Benchmark("amc23", "math/amc23.jsonl", TaskKind.MATH, "torl"),
        Benchmark("olympiadbench", "math/olympiadbench.jsonl", TaskKind.MATH, "torl"),
        Benchmark("torl_test", "math/torl_test.parquet", TaskKind.MATH, "torl"),
        Benchmark("nq", "qa/nq_test_sample1000.jsonl", TaskKind.QA, "search_r1"),
        Benchmark("hotpotqa", "qa/hotpotqa_dev_sample200.jsonl", TaskKind.QA, "search_r1"),
    )
}

#: The Search-R1 passage sample (2018 Wikipedia, DPR 100-word split), for `load_passages`.
WIKI18_SAMPLE = "qa/wiki18_passages_sample.jsonl"


def shared_data_dir() -> Path:
    """The shared data directory (env ``PARETOPO_SHARED_DATA`` or ``<repo>/../shared/data``)."""
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def benchmark(name: str) -> Benchmark:
    """The benchmark called `name`; a `DatasetError` listing the known names otherwise."""
    try:
        return BENCHMARKS[name]
    except KeyError:
        from paretopo.datasets.testbed import TESTBED_BENCHMARKS

        known = ", ".join([*BENCHMARKS, *TESTBED_BENCHMARKS])
        raise DatasetError(
            f"unknown benchmark {name!r}; known: {known} (or pass a file path)"
        ) from None


def load_file(
    path: Path, *, kind: TaskKind | None = None, source: str | None = None,
    limit: int | None = None,
) -> list[Record]:
    """Records of any benchmark file: ``.parquet`` (verl) or ``.jsonl``.

    For JSONL, ``kind`` defaults to ``qa`` when the first record has ``golden_answers``
    (FlashRAG/Search-R1) and to ``math`` otherwise.
    """
    path = Path(path)
    source = source or path.stem
    if path.suffix == ".parquet":
        return load_verl_parquet(path, source=source, kind=kind, limit=limit)
    if path.suffix not in (".jsonl", ".json"):
        raise DatasetError(f"{path}: unknown benchmark file type (expected .jsonl or .parquet)")
    if kind is None:
        kind = _guess_kind(path)
    return load_jsonl(path, kind=kind, source=source, limit=limit)


def _guess_kind(path: Path) -> TaskKind:
    from paretopo.datasets.readers import jsonl_rows

    first = next(iter(jsonl_rows(path)), None)
    return TaskKind.QA if first is not None and "golden_answers" in first[1] else TaskKind.MATH


def load_benchmark(
    name_or_path: str | Path, *, data_dir: Path | None = None, limit: int | None = None
) -> list[Record]:
    """Records of a named benchmark (see `BENCHMARKS`; the testbed's `testbed-calc` and
    `testbed-kbqa`) or of a benchmark file path."""
    from paretopo.datasets.testbed import TESTBED_BENCHMARKS, load_testbed

    name = str(name_or_path)
    if name in TESTBED_BENCHMARKS:
        return load_testbed(name, limit=limit)
    if name in BENCHMARKS:
        b = BENCHMARKS[name]
        path = (data_dir or shared_data_dir()) / b.path
        if not path.is_file():
            raise DatasetError(
                f"{path}: benchmark {name!r} not found; set {ENV_DATA_DIR} to the shared data "
                "directory"
            )
        return load_file(path, kind=b.kind, source=name, limit=limit)
    path = Path(name_or_path)
    if not path.is_file():
        benchmark(name)  # raises with the list of known names
    return load_file(path, limit=limit)
