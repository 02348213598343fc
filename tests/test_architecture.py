"""Dependencies point one way (pipeline/__init__.py draws the map).

Every ``import`` in the project's code, at module level or inside a function, is read with
``ast``; an import of a higher layer, or a cycle between apps, fails with the file and line.
A function-level import is an import like any other here: moving one into a function does
not hide a cycle from this test.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# config is two things: the kit every app may use (errors, parsers, the alert port…) at
# the bottom, and the wiring of the whole project (settings, URLs, beat, health) on top.
CONFIG_TOP = {"settings", "urls", "api_urls", "health", "views", "beat", "celery", "wsgi",
              "asgi"}
# Lowest first. Apps in one layer may import each other one way only (no cycle).
LAYERS: list[set[str]] = [
    {"config.kit"},
    {"brokers"},
    {"accounts"},
    {"positions"},
    {"guards", "reconciliation"},
    {"notifications"},
    {"risk"},
    {"pipeline"},
    {"dashboard"},
    {"config.top"},
]
RANK = {unit: rank for rank, layer in enumerate(LAYERS) for unit in layer}
APPS = {unit.split(".")[0] for unit in RANK}


def unit_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] not in APPS:
        return None
    if parts[0] == "config":
        # config/__init__.py loads the Celery app: the project's wiring
        return "config.top" if len(parts) == 1 or parts[1] in CONFIG_TOP else "config.kit"
    return parts[0]


def project_modules() -> dict[str, Path]:
    modules = {}
    for path in ROOT.glob("*/**/*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] not in APPS or "migrations" in rel.parts:
            continue
        name = ".".join(rel.with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    return modules


def imports() -> list[tuple[str, str, str]]:
    """(importing unit, imported unit, "file:line module") for every cross-unit import."""
    found = []
    modules = project_modules()
    for module, path in modules.items():
        source = unit_of(module)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # "from config import schema" imports the module config.schema
                names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules
                         else node.module for a in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                target = unit_of(name)
                if target is not None and target != source:
                    where = f"{path.relative_to(ROOT)}:{node.lineno} {name}"
                    found.append((source, target, where))
    return found


def test_the_walk_sees_the_project():
    # a walk that found nothing would pass everything below
    edges = {(a, b) for a, b, _ in imports()}
    assert ("pipeline", "guards") in edges
    assert ("positions", "accounts") in edges
    assert len(project_modules()) > 60


def test_no_app_imports_a_higher_layer():
    upward = [f"{a} → {b}: {where}" for a, b, where in imports() if RANK[b] > RANK[a]]
    assert upward == []


def test_no_cycle_between_apps():
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b, _ in imports():
        graph[a].add(b)
    cycles: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt == path[0]:
                cycles.add(" → ".join([*path, nxt]))
            elif nxt not in path:
                visit(nxt, [*path, nxt])

    for start in sorted(graph):
        visit(start, [start])
    assert sorted(cycles)[:10] == []


def test_the_layer_check_catches_an_upward_import():
    # the rule itself, on a made-up edge: positions may not import guards
    assert RANK[unit_of("guards.services")] > RANK[unit_of("positions.services")]
    assert unit_of("config.errors") == "config.kit"
    assert unit_of("config.urls") == "config.top"
