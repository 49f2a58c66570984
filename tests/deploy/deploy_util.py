"""Shared loaders of the deployment tests: the compose file as Compose would read it, the
chart rendered by Helm itself (helm-python-sdk embeds Helm 4), and the Dockerfiles."""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
CHART_DIR = ROOT / "deploy" / "k8s"
VALUES_FILES = ("values.yaml", "values-small.yaml", "values-large.yaml")
DOCKERFILES = (ROOT / "docker" / "Dockerfile", ROOT / "docker" / "gpu.Dockerfile")
SCHEMAS = Path(__file__).resolve().parent / "schemas"
KUBE_VERSION = "1.33.0"  # oldest release the chart's executor options (hostUsers) need

# What a user must supply at install time (the chart has no default for them, by design).
INSTALL_VALUES: dict[str, Any] = {
    "archive": {"writeToken": "deploy-test-token"},
    "learner": {"runConfig": "run_id: deploy-test\nalgorithm: {name: paretopo}\n"},
}
# The variables a user must export before `docker compose` (see docs/deployment.md).
COMPOSE_ENV = {"PARETOPO_WRITE_TOKEN": "deploy-test-token",
               "PARETOPO_RUN_CONFIG": "./configs/algorithm.default.yaml"}

_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


class MissingVariable(KeyError):
    """A `${NAME:?message}` variable that is unset, as Compose reports it."""


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable interpolation: ${X}, ${X:-default}, ${X-default}, ${X:?err}."""

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"] or ""
        value = env.get(name)
        empty = value is None or (value == "" and op is not None and op.startswith(":"))
        if op in (":-", "-"):
            return arg if (value is None if op == "-" else empty) else value
        if op in (":?", "?"):
            if value is None or (op == ":?" and value == ""):
                raise MissingVariable(f"{name}: {arg}")
            return value
        return value or ""

    return _VAR.sub(replace, text.replace("$$", "\0")).replace("\0", "$")


def load_compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    """docker-compose.yml after interpolation with `env` (default: COMPOSE_ENV only)."""
    text = interpolate(COMPOSE_FILE.read_text(), COMPOSE_ENV if env is None else env)
    return yaml.safe_load(text)


def helm():
    import helm_python

    return helm_python


@functools.cache
def values_file(name: str) -> dict[str, Any]:
    return yaml.safe_load((CHART_DIR / name).read_text()) or {}


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep merge, `extra` wins (what `-f a.yaml --set ...` does)."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(
            out.get(key), dict) else value
    return out


def render(values: dict[str, Any], *, name: str = "demo",
           namespace: str = "ml") -> list[dict[str, Any]]:
    """Every object the chart renders with `values` (Helm's own engine, offline)."""
    h = helm()
    with h.Chart.load(os.fspath(CHART_DIR)) as chart:
        manifests = chart.render(values, name=name, namespace=namespace, is_install=True)
    objects = []
    for path, text in sorted(manifests.items()):
        if not path.endswith((".yaml", ".yml")):
            continue
        objects += [doc for doc in yaml.safe_load_all(text) if doc]
    return objects


@functools.cache
def render_file(name: str) -> tuple[dict[str, Any], ...]:
    """Objects rendered from one shipped values file plus the install-time values."""
    return tuple(render(merge(values_file(name), INSTALL_VALUES)))


def by_kind(objects, kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job", "JobSet")


def pod_template(obj: dict[str, Any]) -> dict[str, Any]:
    """The pod template of a Deployment, StatefulSet, Job or JobSet (its first Job's)."""
    if obj["kind"] == "JobSet":
        return obj["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]
    return obj["spec"]["template"]


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return pod_template(obj)["spec"]


def component(obj: dict[str, Any]) -> str:
    return pod_template(obj)["metadata"]["labels"]["app.kubernetes.io/component"]


def workloads(objects) -> dict[str, dict[str, Any]]:
    """Deployments, StatefulSets, Jobs and JobSets by component name."""
    return {component(o): o for o in objects if o["kind"] in WORKLOAD_KINDS}


def container(obj: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    """A workload's container by name (default: the first)."""
    containers = pod_spec(obj)["containers"]
    return containers[0] if name is None else next(c for c in containers if c["name"] == name)


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    """Container env as name -> literal value (or the valueFrom dict)."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


# Custom resources the chart renders, validated against their CRDs' published schemas
# (tests/deploy/schemas/crds, README there): kubernetes-validate has only built-in kinds.
CRD_SCHEMAS = {
    ("jobset.x-k8s.io/v1alpha2", "JobSet"): "jobset.x-k8s.io_v1alpha2_jobset.json",
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh_v1alpha1_scaledobject.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda.sh_v1alpha1_triggerauthentication.json",
}


def _strict(schema: Any) -> Any:
    """An OpenAPI v3 CRD schema as the API server's strict field validation applies it: an
    object with declared properties accepts no other field (unless it preserves unknown ones)."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


@functools.cache
def crd_validator(api_version: str, kind: str):
    import json

    import jsonschema

    schema = json.loads((SCHEMAS / "crds" / CRD_SCHEMAS[(api_version, kind)]).read_text())
    return jsonschema.Draft7Validator(_strict(schema))


def validate(obj: dict[str, Any]) -> None:
    """Raise unless `obj` matches its schema: the Kubernetes one (strict) for built-in kinds,
    the CRD's for JobSet / ScaledObject / TriggerAuthentication. A JobSet's Job templates are
    validated as batch/v1 Jobs (the vendored CRD schema leaves them out, see its README)."""
    import kubernetes_validate

    key = (obj["apiVersion"], obj["kind"])
    if key not in CRD_SCHEMAS:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        return
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in crd_validator(*key).iter_errors(obj)]
    if errors:
        raise ValueError(f"{obj['kind']} {obj['metadata']['name']}: {errors}")
    if obj["kind"] == "JobSet":
        for rjob in obj["spec"]["replicatedJobs"]:
            job = {"apiVersion": "batch/v1", "kind": "Job",
                   "metadata": {"name": f"{obj['metadata']['name']}-{rjob['name']}-0",
                                **rjob["template"].get("metadata", {})},
                   "spec": rjob["template"]["spec"]}
            kubernetes_validate.validate(job, KUBE_VERSION, strict=True)
