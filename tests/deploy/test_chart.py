"""The Helm chart, rendered by Helm 4 itself (helm-python-sdk) for every shipped values
file, linted, and every object validated against the Kubernetes schemas."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest
from deploy_util import (
    CHART_DIR,
    INSTALL_VALUES,
    KUBE_VERSION,
    VALUES_FILES,
    by_kind,
    container,
    env_of,
    helm,
    merge,
    pod_spec,
    render,
    render_file,
    validate,
    values_file,
    workloads,
)

per_file = pytest.mark.parametrize("values_name", VALUES_FILES)


@per_file
def test_lint_is_clean(values_name: str) -> None:
    values = merge(values_file(values_name), INSTALL_VALUES)
    report = helm().lint(str(CHART_DIR), values, strict=True, kube_version=f"v{KUBE_VERSION}")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"] and not problems, report


@per_file
def test_every_object_matches_the_kubernetes_schema(values_name: str) -> None:
    objects = render_file(values_name)
    assert len(objects) > 10
    for obj in objects:
        # strict: unknown fields (a typo in a template) are errors too.
        validate(obj)


@per_file
def test_executor_has_no_egress(values_name: str) -> None:
    objects = render_file(values_name)
    policies = [p for p in by_kind(objects, "NetworkPolicy").values()
                if p["spec"]["podSelector"]["matchLabels"].get(
                    "app.kubernetes.io/component") == "executor"]
    assert len(policies) == 1
    spec = policies[0]["spec"]
    assert "Egress" in spec["policyTypes"] and spec.get("egress", []) == []
    # Only rollout workers may call it.
    sources = [peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
               for rule in spec["ingress"] for peer in rule["from"]]
    assert sources == ["rollout"]


@per_file
def test_pods_are_non_root_without_capabilities(values_name: str) -> None:
    for name, workload in workloads(render_file(values_name)).items():
        pod = pod_spec(workload)
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] > 0, name
        for c in pod["containers"] + pod.get("initContainers", []):
            ctx = c["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False, name
            assert ctx["capabilities"]["drop"] == ["ALL"], name
            assert ctx["readOnlyRootFilesystem"] is True, name
            assert "privileged" not in ctx and "add" not in ctx["capabilities"], name


@per_file
def test_probes_hit_the_real_health_endpoints(values_name: str) -> None:
    expected = {  # component: (liveness, readiness), an HTTP path or "grpc"
        "archive": ("/healthz", "/readyz"), "executor": ("grpc", "grpc"),
        "search": ("grpc", "grpc"), "rollout": ("/healthz", "/readyz"),
        "learner": ("/healthz", "/healthz"),
    }
    found = workloads(render_file(values_name))
    for name, (live, ready) in expected.items():
        main = container(found[name])
        ports = {p["name"]: p["containerPort"] for p in main["ports"]}
        for probe, want in ((main["livenessProbe"], live),
                            (main["readinessProbe"], ready)):
            if want == "grpc":
                assert probe["grpc"]["port"] == ports["grpc"], name
            else:
                assert probe["httpGet"]["path"] == want, name
                assert probe["httpGet"]["port"] in ("http", ports["http"]), name


@per_file
def test_gpu_requests_and_scheduling_come_from_values(values_name: str) -> None:
    values = merge(values_file("values.yaml"), values_file(values_name))
    found = workloads(render_file(values_name))
    for name in ("rollout", "learner", "search"):
        block = values[name]
        pod = pod_spec(found[name])
        limits = pod["containers"][0]["resources"].get("limits", {})
        count = block.get("gpu", {}).get("count", 0)
        assert limits.get("nvidia.com/gpu", 0) == count, name
        assert pod.get("nodeSelector", {}) == block["nodeSelector"], name
        assert pod.get("tolerations", []) == block["tolerations"], name
    assert values["rollout"]["gpu"]["count"] >= 1 and values["learner"]["gpu"]["count"] >= 1


@per_file
def test_config_secret_volume_and_scaling_objects(values_name: str) -> None:
    objects = render_file(values_name)
    values = merge(values_file("values.yaml"), values_file(values_name))
    run = next(iter(by_kind(objects, "ConfigMap").values()))
    assert run["data"]["run.yaml"].strip() == INSTALL_VALUES["learner"]["runConfig"].strip()
    secret = by_kind(objects, "Secret")["demo-paretopo-archive"]
    assert secret["stringData"]["write-token"] == INSTALL_VALUES["archive"]["writeToken"]
    learner = pod_spec(workloads(objects)["learner"])
    assert learner["volumes"][0]["configMap"]["name"] == run["metadata"]["name"]
    archive = container(workloads(objects)["archive"])
    assert env_of(archive)["PARETOPO_ARCHIVE_WRITE_TOKEN"] == {
        "secretKeyRef": {"name": secret["metadata"]["name"], "key": "write-token"}}
    pvc = by_kind(objects, "PersistentVolumeClaim")
    assert list(pvc) == ["demo-paretopo-data"]
    assert pvc["demo-paretopo-data"]["spec"]["accessModes"] == [values["data"]["accessMode"]]
    hpas = {h["spec"]["scaleTargetRef"]["name"].rsplit("-", 1)[1]: h
            for h in by_kind(objects, "HorizontalPodAutoscaler").values()}
    for name in ("executor", "search"):
        scaling = values[name]["autoscaling"]
        assert (name in hpas) == scaling["enabled"], name
        if scaling["enabled"]:
            assert hpas[name]["spec"]["maxReplicas"] == scaling["maxReplicas"]
    # GPU rollout workers never scale on CPU (KEDA on the jobs stream instead, when enabled).
    assert "rollout" not in hpas
    assert bool(by_kind(objects, "ScaledObject")) == values["rollout"]["autoscaling"]["enabled"]
    redis = workloads(objects)["redis"]
    assert redis["kind"] == "StatefulSet"
    args = container(redis)["args"]
    assert args[:2] == ["--appendonly", "yes"]


@per_file
def test_archive_ingress_when_enabled(values_name: str) -> None:
    values = merge(values_file(values_name), INSTALL_VALUES)
    values = merge(values, {"archive": {"ingress": {"enabled": True, "host": "a.example"}}})
    ingress = next(iter(by_kind(render(values), "Ingress").values()))
    rule = ingress["spec"]["rules"][0]
    assert rule["host"] == "a.example"
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "demo-paretopo-archive", "port": {"name": "http"}}


def test_external_redis_replaces_the_statefulset() -> None:
    url = "redis://cache.example:6379/2"
    values = merge(INSTALL_VALUES, {"redis": {"enabled": False, "externalUrl": url}})
    objects = render(values)
    assert "redis" not in workloads(objects)
    assert "demo-paretopo-redis" not in by_kind(objects, "Secret")
    for name in ("archive", "rollout", "learner"):
        env = env_of(container(workloads(objects)[name]))
        assert url in env.values() and "PARETOPO_REDIS_PASSWORD" not in env, name


@pytest.mark.parametrize(("drop", "message"), [
    ("archive", "archive.writeToken is required"),
    ("learner", "learner.runConfig is required"),
])
def test_missing_install_values_fail_with_their_name(drop: str, message: str) -> None:
    values = copy.deepcopy(INSTALL_VALUES)
    del values[drop]
    with pytest.raises(helm().HelmError, match=message):
        render(values)


@pytest.mark.parametrize("bad", [
    {"rollout": {"engine": "tgi"}},
    {"executor": {"sandbox": {"mechanism": "none"}}},
    {"image": {"tag": "latest"}},
    {"learner": {"gpu": {"count": -1}}},
    {"rollout": {"replica": 3}},
    {"learner": {"nodes": 0}},
    {"redis": {"auth": {"password": "p@ss/word"}}},  # would break the redis:// URL
    {"redis": {"maxmemory": "3GiB"}},
    {"rollout": {"autoscaling": {"targetCPUUtilizationPercentage": 80}}},
])
def test_values_schema_rejects_bad_values(bad: dict) -> None:
    with pytest.raises(helm().HelmValuesError):
        render(merge(INSTALL_VALUES, bad))


def test_schema_validation_catches_a_misspelt_field() -> None:
    deployment = copy.deepcopy(workloads(render_file("values.yaml"))["archive"])
    main = container(deployment)
    main["livenesProbe"] = main.pop("livenessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSION, strict=True)
