"""Module-scoped service stack for the learner tests, and a tiny testbed policy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from learner_stack import Stack, start_stack

from paretopo.testbed.model import ModelConfig, build_model, save_policy
from paretopo.testbed.tokenizer import build_tokenizer

TINY = ModelConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                   num_attention_heads=2, num_key_value_heads=1)


@pytest.fixture(scope="session")
def tiny_policy(tmp_path_factory) -> Path:
    tokenizer = build_tokenizer()
    return save_policy(build_model(tokenizer, TINY, seed=0), tokenizer,
                       tmp_path_factory.mktemp("policy") / "tiny")


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    services = start_stack(tmp_path_factory.mktemp("stack"))
    try:
        yield services
    finally:
        services.stop()
