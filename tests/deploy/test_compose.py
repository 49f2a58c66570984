"""docker-compose.yml against the Compose Specification's JSON schema (vendored copy) and the
properties the deployment promises: health checks, start order, GPUs, the sealed executor."""

from __future__ import annotations

import json

import jsonschema
import pytest
from deploy_util import COMPOSE_ENV, SCHEMAS, MissingVariable, interpolate, load_compose

GPU_SERVICES = ("rollout", "learner")
CPU_SERVICES = ("rollout-cpu", "learner-cpu")
ONE_SHOT = ("search-index",)


def schema_errors(document: dict) -> list[str]:
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(document)]


def test_matches_the_compose_specification() -> None:
    assert schema_errors(load_compose()) == []


def test_schema_check_can_fail() -> None:
    broken = load_compose()
    broken["services"]["archive"]["depends_on"]["redis"]["condition"] = "healthy"
    broken["services"]["executor"]["healthcheck"]["intervall"] = "5s"
    errors = schema_errors(broken)
    assert any("depends_on" in e for e in errors) and any("intervall" in e for e in errors)


def test_secrets_are_required_not_written_down() -> None:
    for name in COMPOSE_ENV:
        env = {k: v for k, v in COMPOSE_ENV.items() if k != name}
        with pytest.raises(MissingVariable, match=name):
            load_compose(env)
    archive = load_compose()["services"]["archive"]["environment"]
    assert archive["PARETOPO_ARCHIVE_WRITE_TOKEN"] == COMPOSE_ENV["PARETOPO_WRITE_TOKEN"]


def test_interpolation_follows_compose() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET:-d} ${UNSET:-d} ${EMPTY:-d} ${EMPTY-d} $${SET}", env) == \
        "x d d  ${SET}"


def test_every_service_has_a_health_check_and_waits_for_its_dependencies() -> None:
    services = load_compose()["services"]
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service["restart"] == "no"
            continue
        check = service["healthcheck"]
        assert not check.get("disable") and check["test"][0] == "CMD", name
        for dep, rule in service.get("depends_on", {}).items():
            wanted = ("service_completed_successfully" if dep in ONE_SHOT
                      else "service_healthy")
            assert rule["condition"] == wanted, (name, dep)
    assert set(services["rollout"]["depends_on"]) == {"redis", "executor", "search"}
    assert set(services["learner"]["depends_on"]) == {"redis", "archive"}
    assert services["search"]["depends_on"]["search-index"]["condition"] == \
        "service_completed_successfully"


def test_gpu_reservations_and_profiles() -> None:
    services = load_compose()["services"]
    for name in GPU_SERVICES:
        devices = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["driver"] == "nvidia" and devices[0]["capabilities"] == ["gpu"]
        assert int(devices[0]["count"]) >= 1
        assert services[name]["profiles"] == ["gpu"]
    for name in CPU_SERVICES:
        assert services[name]["profiles"] == ["cpu"]
        assert "resources" not in services[name].get("deploy", {}), name
        assert services[name].get("environment", {}).get("PARETOPO_ROLLOUT_DEVICE", "cpu") == "cpu"
    always = {n for n, s in services.items() if "profiles" not in s}
    assert always == {"redis", "archive", "executor", "search-index", "search"}


def test_executor_has_no_route_out() -> None:
    compose = load_compose()
    networks = compose["services"]["executor"]["networks"]
    assert networks and all(compose["networks"][n].get("internal") is True for n in networks)
    assert "ports" not in compose["services"]["executor"]
    # Only the rollout workers share its network.
    sharing = {n for n, s in compose["services"].items()
               if set(s.get("networks", [])) & set(networks)}
    assert sharing == {"executor", "rollout", "rollout-cpu"}


def test_redis_is_persistent_and_data_is_shared() -> None:
    services = load_compose()["services"]
    redis = services["redis"]
    assert redis["command"][1:] == ["--appendonly", "yes", "--appendfsync", "everysec"]
    assert "redis-data:/data" in redis["volumes"]
    assert redis["image"].split(":")[1][0].isdigit()
    for name in ("learner", "learner-cpu"):
        assert "data:/data" in services[name]["volumes"]
    for name in ("rollout", "rollout-cpu"):
        assert "data:/data:ro" in services[name]["volumes"]
    assert services["archive"]["ports"] == ["8080:8080"]
