"""The paper's benchmark datasets, loaded from local files into one record type.

>>> from paretopo.datasets import load_benchmark
>>> records = load_benchmark("math500", limit=2)  # doctest: +SKIP
"""

from paretopo.datasets.loaders import load_jsonl, load_passages, load_verl_parquet
from paretopo.datasets.records import DatasetError, Record, TaskKind, golds_from
from paretopo.datasets.registry import (
    BENCHMARKS,
    ENV_DATA_DIR,
    WIKI18_SAMPLE,
    Benchmark,
    benchmark,
    load_benchmark,
    load_file,
    shared_data_dir,
)
from paretopo.datasets.testbed import TESTBED_BENCHMARKS, load_testbed

__all__ = [
    "BENCHMARKS",
    "ENV_DATA_DIR",
    "TESTBED_BENCHMARKS",
    "WIKI18_SAMPLE",
    "Benchmark",
    "DatasetError",
    "Record",
    "TaskKind",
    "benchmark",
    "golds_from",
    "load_benchmark",
    "load_file",
    "load_jsonl",
    "load_passages",
    "load_testbed",
    "load_verl_parquet",
    "shared_data_dir",
]
