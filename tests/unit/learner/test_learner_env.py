"""PARETOPO_LEARNER_* variables override the run config's `services:` block."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from paretopo.config import ConfigError
from services.learner.__main__ import main
from services.learner.config import load_run_config
from services.learner.env import LearnerEnv, apply_env

FILE_SERVICES = {"redis_url": "redis://file:6379/0", "archive": "file:1", "archive_token": "ft",
                 "namespace": "filens", "metrics_host": "127.0.0.1", "metrics_port": 9000}
ENV = {"REDIS_URL": "redis://redis:6379/0", "ARCHIVE": "archive:50051",
       "ARCHIVE_TOKEN": "secret-token", "NAMESPACE": "envns", "METRICS_HOST": "0.0.0.0",
       "METRICS_PORT": "9102"}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ENV:
        monkeypatch.delenv(f"PARETOPO_LEARNER_{key}", raising=False)


@pytest.fixture
def run_file(tmp_path: Path) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"run_id": "r1", "model_path": "m", "output_dir": "o",
                                    "group_size": 4, "services": FILE_SERVICES}))
    return path


def _set(monkeypatch: pytest.MonkeyPatch, values: dict[str, str]) -> None:
    for key, value in values.items():
        monkeypatch.setenv(f"PARETOPO_LEARNER_{key}", value)


def test_without_env_the_file_wins(run_file: Path) -> None:
    config = load_run_config(run_file)
    assert apply_env(config) is config
    not_endpoints = {"archive_timeout_s", "outage_budget_s"}
    assert config.services.model_dump(exclude=not_endpoints) == FILE_SERVICES


def test_env_overrides_every_endpoint(run_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, ENV)
    services = apply_env(load_run_config(run_file)).services
    assert (services.redis_url, services.archive, services.archive_token) == (
        "redis://redis:6379/0", "archive:50051", "secret-token")
    assert (services.namespace, services.metrics_host, services.metrics_port) == (
        "envns", "0.0.0.0", 9102)


def test_only_set_variables_override(run_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, {"ARCHIVE": "archive:50051", "NAMESPACE": ""})  # empty = unset
    config = apply_env(load_run_config(run_file))
    assert config.services.archive == "archive:50051"
    assert config.services.namespace == "filens" and config.services.archive_token == "ft"
    assert config.group_size == 4  # the training recipe is untouched


def test_env_overrides_defaults_when_the_file_has_no_services_block(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"run_id": "r1", "model_path": "m", "output_dir": "o"}))
    _set(monkeypatch, {"METRICS_PORT": "9102"})
    config = apply_env(load_run_config(path))
    assert config.services.metrics_port == 9102
    assert config.services.redis_url == "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize(("key", "value"), [
    ("METRICS_PORT", "http"), ("METRICS_PORT", "70000"), ("NAMESPACE", "bad name!")])
def test_bad_values_name_the_variable(run_file: Path, monkeypatch: pytest.MonkeyPatch,
                                      key: str, value: str) -> None:
    _set(monkeypatch, {key: value})
    with pytest.raises(ConfigError, match=f"PARETOPO_LEARNER_{key}"):
        apply_env(load_run_config(run_file))


def test_explicit_settings_object(run_file: Path) -> None:
    config = apply_env(load_run_config(run_file), LearnerEnv(archive="a:1"))
    assert config.services.archive == "a:1"


def test_cli_dry_run_applies_env_and_hides_the_token(
        run_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    _set(monkeypatch, ENV)
    assert main(["--config", str(run_file), "--dry-run"]) == 0
    out = capsys.readouterr().out
    services = json.loads(out)["services"]
    assert services["archive"] == "archive:50051" and services["archive_token"] == "***"
    assert "secret-token" not in out


def test_cli_bad_env_exits_2_with_one_line(
        run_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    _set(monkeypatch, {"METRICS_PORT": "-1"})
    assert main(["--config", str(run_file), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "PARETOPO_LEARNER_METRICS_PORT" in err and len(err.strip().splitlines()) == 1
