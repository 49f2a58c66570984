"""docker-compose.yml against the Compose Specification's JSON schema (vendored copy) and the
properties the deployment promises: health checks, start order, GPUs, the sealed executor."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
from deploy_util import COMPOSE_ENV, SCHEMAS, MissingVariable, interpolate, load_compose

from paretopo.datasets.registry import ENV_DATA_DIR

GPU_ROLLOUTS = ("rollout", "rollout-gpu0", "rollout-gpu1", "rollout-gpu2", "rollout-gpu3")
GPU_LEARNERS = ("learner", "learner-gpu4-7")
GPU_SERVICES = GPU_ROLLOUTS + GPU_LEARNERS
CPU_SERVICES = ("rollout-cpu", "learner-cpu")
LEARNERS = (*GPU_LEARNERS, "learner-cpu")
ONE_SHOT = ("search-index",)
PROFILES = {"gpu": ("rollout", "learner"), "gpu8": (*GPU_ROLLOUTS[1:], "learner-gpu4-7")}


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


def gpu_ids(service: dict) -> list[str]:
    (device,) = service["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    # `count: N` without device_ids hands every container GPUs 0..N-1 (Docker's nvidia
    # driver): each service names its own devices instead.
    assert "count" not in device
    return device["device_ids"]


def test_gpu_reservations_and_profiles() -> None:
    services = load_compose()["services"]
    for profile, names in PROFILES.items():
        active = {n for n, s in services.items() if profile in s.get("profiles", [])}
        assert active == set(names), profile
    for name in GPU_SERVICES:
        assert gpu_ids(services[name]), name
        assert "replicas" not in services[name].get("deploy", {}), name  # same GPU for all
    for name in CPU_SERVICES:
        assert services[name]["profiles"] == ["cpu"]
        assert "resources" not in services[name].get("deploy", {}), name
        assert services[name].get("environment", {}).get("PARETOPO_ROLLOUT_DEVICE", "cpu") == "cpu"
    always = {n for n, s in services.items() if "profiles" not in s}
    assert always == {"redis", "archive", "executor", "search-index", "search"}


@pytest.mark.parametrize("env", [{}, {"PARETOPO_ROLLOUT_GPU": "2", "PARETOPO_LEARNER_GPU": "3"}])
def test_each_gpu_goes_to_one_service(env: dict[str, str]) -> None:
    services = load_compose({**COMPOSE_ENV, **env})["services"]
    for profile, names in PROFILES.items():
        ids = [i for n in names for i in gpu_ids(services[n])]
        assert len(ids) == len(set(ids)), (profile, ids)
        assert all(re.fullmatch(r"\d+", i) for i in ids), ids
    assert gpu_ids(services["rollout"]) == [env.get("PARETOPO_ROLLOUT_GPU", "0")]
    assert gpu_ids(services["learner"]) == [env.get("PARETOPO_LEARNER_GPU", "1")]
    assert sorted(i for n in PROFILES["gpu8"] for i in gpu_ids(services[n])) == \
        [str(i) for i in range(8)]


def torchrun_flags(command: list[str]) -> dict[str, str]:
    """`--flag=value` options of a torchrun command line, up to `-m`."""
    assert command[0] == "torchrun", command
    head = command[1:command.index("-m")]
    return dict(f[2:].split("=", 1) if "=" in f else (f[2:], "") for f in head)


def seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smh])", duration))


def test_learners_run_under_torchrun_and_stop_after_their_checkpoint() -> None:
    services = load_compose()["services"]
    for name in LEARNERS:
        service = services[name]
        command = service["command"]
        assert command[command.index("-m"):] == [
            "-m", "services.learner", "--config", "/config/run.yaml"], name
        flags = torchrun_flags(command)
        assert "standalone" in flags and flags["nnodes"] == "1", name
        want = len(gpu_ids(service)) if name in GPU_LEARNERS else 1
        assert int(flags["nproc-per-node"]) == want, name  # one process per pinned GPU
        # compose waits stop_grace_period after SIGTERM; torchrun must give up on its
        # workers first, or the container is killed while it writes the checkpoint.
        grace = seconds(service["stop_grace_period"])
        assert 600 <= int(flags["shutdown-timeout"]) < grace, name
        assert service["restart"].startswith("on-failure:"), name  # resumes, but not forever


def test_learners_find_the_shared_evaluation_data() -> None:
    services = load_compose()["services"]
    for name in LEARNERS:
        service = services[name]
        target = service["environment"][ENV_DATA_DIR]
        mounts = {v.split(":")[1]: v for v in service["volumes"]}
        assert mounts[target].endswith(":ro"), name
        host = mounts[target].split(":")[0]
        # By default the directory the code itself defaults to: ../shared/data beside the
        # checkout (paretopo/datasets/registry.py).
        assert Path(host) == Path("../shared/data"), name
        assert "data" in mounts["/data"], name
    moved = load_compose({**COMPOSE_ENV, "PARETOPO_SHARED_DATA_DIR": "/srv/shared"})
    assert "/srv/shared:/data/shared:ro" in moved["services"]["learner"]["volumes"]


def test_executor_has_no_route_out() -> None:
    compose = load_compose()
    networks = compose["services"]["executor"]["networks"]
    assert networks and all(compose["networks"][n].get("internal") is True for n in networks)
    assert "ports" not in compose["services"]["executor"]
    # Only the rollout workers share its network.
    sharing = {n for n, s in compose["services"].items()
               if set(s.get("networks", [])) & set(networks)}
    assert sharing == {"executor", "rollout-cpu", *GPU_ROLLOUTS}


def test_redis_is_persistent_and_data_is_shared() -> None:
    services = load_compose()["services"]
    redis = services["redis"]
    assert redis["command"][1:5] == ["--appendonly", "yes", "--appendfsync", "everysec"]
    assert "redis-data:/data" in redis["volumes"]
    assert redis["image"].split(":")[1][0].isdigit()
    for name in LEARNERS:
        assert "data:/data" in services[name]["volumes"]
    for name in (*GPU_ROLLOUTS, "rollout-cpu"):
        assert "data:/data:ro" in services[name]["volumes"]
    assert services["archive"]["ports"] == ["8080:8080"]


def test_redis_memory_is_bounded() -> None:
    redis = load_compose()["services"]["redis"]
    args = dict(zip(redis["command"][1::2], redis["command"][2::2], strict=True))
    assert args["--maxmemory-policy"] == "noeviction"  # never drop queued jobs silently
    maxmemory = int(re.fullmatch(r"(\d+)gb", args["--maxmemory"])[1])
    limit = int(re.fullmatch(r"(\d+)g", redis["deploy"]["resources"]["limits"]["memory"])[1])
    # Headroom for the forked AOF rewrite: Redis's ceiling at most 3/4 of the container's.
    assert maxmemory <= 0.75 * limit
