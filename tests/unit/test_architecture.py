"""The import graph follows the architecture (`docs/architecture.md`): dependencies point one
way, application -> services -> library -> core.

- No module of the library (`paretopo/` outside `paretopo/app/`) imports `services`.
- No service imports the application, or another service's internals: only its `client`.
- The core (`paretopo/core/`) imports only the standard library, numpy, torch, moocore and
  itself.
- No circle of imports, counting imports inside functions too.

Imports are read from the source (ast), so a lazy import inside a function counts.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("services.archive", "services.learner", "services.rollout",
            "services.tools.executor", "services.tools.search")
CORE_ALLOWED_THIRD_PARTY = {"numpy", "torch", "moocore"}
GENERATED = "paretopo.v1"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for root in ("paretopo", "services"):
        for path in (REPO / root).rglob("*.py"):
            name = _module_name(path)
            if not name.startswith(GENERATED):
                found[name] = path
    return found


MODULES = _modules()


def _resolve(target: str) -> str:
    """The module an import names: `a.b.c` when it is a module, else its longest module
    prefix (`from a.b import name` names `a.b`)."""
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target


def imports_of(name: str) -> set[str]:
    """Every module imported anywhere in module `name` (absolute names; top-level packages
    for third-party imports)."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _internal(imported: set[str]) -> set[str]:
    """The project modules among `imported` (each resolved to the module it names)."""
    return {_resolve(i) for i in imported if i.split(".")[0] in ("paretopo", "services")} - {""}


def _service_of(module: str) -> str | None:
    return next((s for s in SERVICES if module == s or module.startswith(s + ".")), None)


def test_the_graph_is_not_empty() -> None:
    assert len(MODULES) > 100
    assert "services.rollout.engine" in _internal(imports_of("services.rollout.agent"))


def test_the_library_never_imports_a_service() -> None:
    offenders = {
        name: sorted(i for i in _internal(imports_of(name)) if i.startswith("services"))
        for name in MODULES
        if name.startswith("paretopo") and not name.startswith("paretopo.app")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_services_never_import_the_application() -> None:
    offenders = {
        name: sorted(i for i in _internal(imports_of(name)) if i.startswith("paretopo.app"))
        for name in MODULES if name.startswith("services")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_a_service_reaches_another_only_through_its_client() -> None:
    offenders = {}
    for name in MODULES:
        own = _service_of(name)
        if own is None:
            continue
        foreign = sorted(
            i for i in _internal(imports_of(name))
            if (other := _service_of(i)) is not None and other != own
            and i not in (other, f"{other}.client")
        )
        if foreign:
            offenders[name] = foreign
    assert offenders == {}


def test_the_core_imports_nothing_outside_itself() -> None:
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    offenders = {}
    for name in MODULES:
        if not name.startswith("paretopo.core"):
            continue
        outside = sorted(
            i for i in imports_of(name)
            if not i.startswith("paretopo.core") and i != "paretopo"
            and i.split(".")[0] not in stdlib | CORE_ALLOWED_THIRD_PARTY
        )
        if outside:
            offenders[name] = outside
    assert offenders == {}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def _graph() -> dict[str, set[str]]:
    # A package's __init__ is not an edge target of its own submodules' imports of siblings,
    # so importing `a.b.c` counts as importing `a.b.c` only (its parents load first, but a
    # parent that imports the child is the ordinary package pattern, not a circle).
    return {name: _internal(imports_of(name)) - {name} for name in MODULES}


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_circle_of_imports() -> None:
    cycles = _cycles(_graph())
    if cycles:
        pytest.fail("circles of imports:\n" + "\n".join(" <-> ".join(c) for c in cycles))
