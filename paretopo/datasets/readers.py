"""Rows of JSONL and Parquet files, each with the place it came from for error messages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from paretopo.datasets.records import DatasetError


def jsonl_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(where, object)`` for each non-blank line; ``where`` is ``"<path> line <n>"``."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 (closed by the with below)
    except OSError as err:
        raise DatasetError(f"{path}: cannot open ({err.strerror})") from err
    with fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            where = f"{path} line {lineno}"
            try:
                obj = json.loads(raw)
            except UnicodeDecodeError as err:
                raise DatasetError(f"{where}: not valid UTF-8 ({err.reason})") from err
            except json.JSONDecodeError as err:
                message = f"not valid JSON ({err.msg}, column {err.colno})"
                raise DatasetError(f"{where}: {message}") from err
            if not isinstance(obj, dict):
                raise DatasetError(f"{where}: expected a JSON object, got {type(obj).__name__}")
            yield where, obj


def parquet_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(where, row)`` for each row; ``where`` is ``"<path> row <i>"`` (0-based)."""
    import pyarrow.parquet as pq  # heavy; only parquet users pay for it

    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as err:
        raise DatasetError(f"{path}: not a readable Parquet file ({err})") from err
    for i, row in enumerate(table.to_pylist()):
        yield f"{path} row {i}", row
