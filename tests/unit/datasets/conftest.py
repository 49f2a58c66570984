"""The shared benchmark files (see ``../shared/data/SOURCES.md``); tests skip only without them."""

from __future__ import annotations

from pathlib import Path

import pytest

from paretopo.datasets import shared_data_dir


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"shared data directory {path} is absent (set PARETOPO_SHARED_DATA)")
    return path
