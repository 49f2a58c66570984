"""Module-scoped service stack for the learner tests (the tiny policy: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from learner_stack import Stack, start_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    services = start_stack(tmp_path_factory.mktemp("stack"))
    try:
        yield services
    finally:
        services.stop()
