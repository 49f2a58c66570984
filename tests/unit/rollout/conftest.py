"""A tiny testbed policy on disk, shared by the rollout unit tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from paretopo.testbed.model import ModelConfig, build_model, save_policy
from paretopo.testbed.tokenizer import build_tokenizer

sys.path.insert(0, str(Path(__file__).parent))  # scripted.py, importable by both tiers

TINY = ModelConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                   num_attention_heads=2, num_key_value_heads=1)


@pytest.fixture(scope="session")
def tiny_policy(tmp_path_factory) -> Path:
    tokenizer = build_tokenizer()
    return save_policy(build_model(tokenizer, TINY, seed=0), tokenizer,
                       tmp_path_factory.mktemp("policy") / "v1")
