"""No drift between the deployment files and the code: every PARETOPO_* variable that compose
and the chart set is one the service reads, ports agree end to end, and the commands run."""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_util import (
    ROOT,
    by_kind,
    container,
    env_of,
    load_compose,
    render_file,
    workloads,
)
from pydantic_settings import BaseSettings

# service -> (package holding its settings, env prefix, `python -m` module)
SERVICES = {
    "archive": ("services.archive", "PARETOPO_ARCHIVE_", "services.archive"),
    "executor": ("services.tools.executor", "PARETOPO_EXECUTOR_", "services.tools.executor"),
    "search": ("services.tools.search", "PARETOPO_SEARCH_", "services.tools.search"),
    "rollout": ("services.rollout", "PARETOPO_ROLLOUT_", "services.rollout"),
    "learner": ("services.learner", "PARETOPO_LEARNER_", "services.learner"),
}
COMPOSE_NAMES = {
    "rollout": ("rollout", "rollout-gpu0", "rollout-gpu1", "rollout-gpu2", "rollout-gpu3",
                "rollout-cpu"),
    "learner": ("learner", "learner-gpu4-7", "learner-cpu"),
}


def settings_fields(package: str, prefix: str) -> set[str] | None:
    """Env names (prefix + field) of the service's pydantic-settings class, None if none yet."""
    if importlib.util.find_spec(package) is None:
        return None
    pkg = importlib.import_module(package)
    for info in pkgutil.iter_modules(pkg.__path__):
        # `env`: the learner's PARETOPO_LEARNER_* overrides of its run config.
        if info.name not in ("settings", "config", "env", "__main__"):
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        for obj in vars(module).values():
            if (isinstance(obj, type) and issubclass(obj, BaseSettings)
                    and obj.model_config.get("env_prefix", "").upper() == prefix):
                return {prefix + name.upper() for name in obj.model_fields}
    return None


def deployed_env(service: str) -> dict[str, str]:
    """PARETOPO_<SERVICE>_* names set for `service` by compose and by the chart."""
    prefix = SERVICES[service][1]
    found: dict[str, str] = {}
    compose = load_compose()["services"]
    for name in COMPOSE_NAMES.get(service, (service,)):
        for key in compose[name].get("environment", {}):
            found[key] = f"compose {name}"
    for values_name in ("values.yaml", "values-large.yaml"):
        workload = workloads(render_file(values_name))[service]
        for key in env_of(container(workload)):
            found[key] = f"chart {values_name}"
    return {k: v for k, v in found.items() if k.startswith(prefix)}


@pytest.mark.parametrize("service", list(SERVICES))
def test_every_variable_is_read_by_the_service(service: str) -> None:
    package, prefix, _ = SERVICES[service]
    fields = settings_fields(package, prefix)
    if fields is None:
        fields = set()  # the service reads no environment: nothing may be set for it
    unknown = {k: where for k, where in deployed_env(service).items() if k not in fields}
    assert not unknown, f"set but never read by {service}: {unknown}"


@pytest.mark.parametrize("service", list(SERVICES))
def test_commands_name_real_modules(service: str) -> None:
    module = SERVICES[service][2]
    spec = importlib.util.find_spec(f"{module}.__main__")
    if spec is None and service in ("rollout", "learner"):
        pytest.skip(f"{module} has no entry point yet")
    assert spec is not None, f"python -m {module}: no such module"
    compose = load_compose()["services"]
    commands = [compose[n].get("command") for n in COMPOSE_NAMES.get(service, (service,))]
    for values_name in ("values.yaml", "values-large.yaml"):
        commands.append(container(workloads(render_file(values_name))[service])["command"])
    for command in commands:
        if command is None:
            continue
        if command[0] == "torchrun":  # the learner: `torchrun [flags] -m services.learner ...`
            command = ["python", *command[command.index("-m"):]]
        assert command[:3] == ["python", "-m", module], command


def test_ports_agree_in_compose() -> None:
    s = load_compose()["services"]
    archive, executor, search = (s[n]["environment"] for n in ("archive", "executor", "search"))
    for name in ("rollout", "rollout-cpu"):
        env = s[name]["environment"]
        assert env["PARETOPO_ROLLOUT_EXECUTOR"] == f"executor:{executor['PARETOPO_EXECUTOR_PORT']}"
        assert env["PARETOPO_ROLLOUT_SEARCH"] == f"search:{search['PARETOPO_SEARCH_PORT']}"
        assert env["PARETOPO_ROLLOUT_HTTP_PORT"] in " ".join(s[name]["healthcheck"]["test"])
    for name in ("learner", "learner-cpu"):
        env = s[name]["environment"]
        assert env["PARETOPO_LEARNER_METRICS_PORT"] in " ".join(s[name]["healthcheck"]["test"])
        assert env["PARETOPO_LEARNER_ARCHIVE"] == f"archive:{archive['PARETOPO_ARCHIVE_GRPC_PORT']}"
        assert env["PARETOPO_LEARNER_ARCHIVE_TOKEN"] == archive["PARETOPO_ARCHIVE_WRITE_TOKEN"]
        assert env["PARETOPO_LEARNER_REDIS_URL"] == archive["PARETOPO_ARCHIVE_REDIS_URL"]
    assert s["archive"]["ports"][0].endswith(":" + archive["PARETOPO_ARCHIVE_HTTP_PORT"])
    assert archive["PARETOPO_ARCHIVE_HTTP_PORT"] in " ".join(s["archive"]["healthcheck"]["test"])
    assert executor["PARETOPO_EXECUTOR_PORT"] in " ".join(s["executor"]["healthcheck"]["test"])
    assert search["PARETOPO_SEARCH_PORT"] in " ".join(s["search"]["healthcheck"]["test"])


def test_ports_agree_in_the_chart() -> None:
    objects = render_file("values.yaml")
    found = workloads(objects)
    services = by_kind(objects, "Service")
    rollout = env_of(container(found["rollout"]))
    learner = env_of(container(found["learner"]))
    for target in (rollout["PARETOPO_ROLLOUT_EXECUTOR"], rollout["PARETOPO_ROLLOUT_SEARCH"],
                   learner["PARETOPO_LEARNER_ARCHIVE"]):
        host, port = target.rsplit(":", 1)
        assert int(port) in [p["port"] for p in services[host]["spec"]["ports"]], target
    for name, workload in found.items():
        main = container(workload)
        env = env_of(main)
        declared = {p["containerPort"] for p in main["ports"]}
        for key, value in env.items():
            if re.search(r"_(GRPC_|HTTP_|METRICS_)?PORT$", key):
                assert int(value) in declared, (name, key)


def test_dockerfiles_expose_the_default_ports() -> None:
    compose = load_compose()["services"]
    text = (ROOT / "docker" / "Dockerfile").read_text()
    for name in ("archive", "executor", "search"):
        for key, value in compose[name]["environment"].items():
            if key.endswith("PORT"):
                assert re.search(rf"EXPOSE[^\n]*\b{value}\b", text), (name, key)


def _run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False,
                          cwd=ROOT, env={**os.environ, **{k: str(v) for k, v in env.items()},
                                                   "PATH": path})


def test_search_index_step_builds_the_index_search_loads(tmp_path: Path) -> None:
    compose = load_compose()["services"]
    script = compose["search-index"]["command"][2].replace("/index", str(tmp_path))
    done = _run(["sh", "-c", script], {})
    assert done.returncode == 0, done.stderr
    index_dir = compose["search"]["environment"]["PARETOPO_SEARCH_INDEX_DIR"]
    built = Path(index_dir.replace("/index", str(tmp_path)))
    assert (built / "manifest.json").is_file()
    # The server accepts the deployed configuration (it exits 2 on any bad variable).
    env = {**compose["search"]["environment"], "PARETOPO_SEARCH_INDEX_DIR": str(built)}
    checked = _run([sys.executable, "-m", "services.tools.search", "--dry-run"], env)
    assert checked.returncode == 0, checked.stderr
    # Building again is a no-op (compose reruns the step on every `up`).
    again = _run(["sh", "-c", script], {})
    assert again.returncode == 0 and "kept" in again.stdout + again.stderr


def test_executor_accepts_the_deployed_configuration() -> None:
    env = load_compose()["services"]["executor"]["environment"]
    checked = _run([sys.executable, "-m", "services.tools.executor", "--dry-run"], env)
    assert checked.returncode == 0, checked.stderr
    assert '"host": "0.0.0.0"' in checked.stdout and '"port": 50061' in checked.stdout


def test_archive_accepts_the_deployed_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.archive.settings import ArchiveSettings

    for key, value in load_compose()["services"]["archive"]["environment"].items():
        monkeypatch.setenv(key, str(value))
    settings = ArchiveSettings()
    assert (settings.host, settings.grpc_port, settings.http_port) == ("0.0.0.0", 50051, 8080)
    assert settings.write_token is not None


def test_chart_learner_gets_the_archive_token_from_the_secret() -> None:
    found = workloads(render_file("values.yaml"))
    learner = env_of(container(found["learner"]))
    archive = env_of(container(found["archive"]))
    token = learner["PARETOPO_LEARNER_ARCHIVE_TOKEN"]
    assert isinstance(token, dict) and "secretKeyRef" in token  # never a literal value
    assert token == archive["PARETOPO_ARCHIVE_WRITE_TOKEN"]
    assert learner["PARETOPO_LEARNER_REDIS_URL"] == archive["PARETOPO_ARCHIVE_REDIS_URL"]
