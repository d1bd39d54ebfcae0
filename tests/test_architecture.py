"""The layers of ``docs/architecture.md`` hold: every import points down (or sideways within
a layer) and no two packages import each other, directly or through others.

Every ``import``/``from … import`` in ``src/garrison`` counts, at any depth (function-level
and ``TYPE_CHECKING`` imports too). A new top-level module or package must be given a layer
here, or the test fails and says so.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "garrison"

# Bottom to top. A unit may import units of its own layer or below, never above.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("__init__", "settings", "errors", "types"),
    ("log", "crypto", "context", "db", "store", "metrics", "tracing", "mail", "runtime"),
    ("events", "deps", "gateway", "openapi", "rewrap"),
    (
        "auth",
        "records",
        "audit",
        "outbox",
        "quotas",
        "ops",
        "flags",
        "privacy",
        "webhooks",
        "files",
    ),
    ("worker",),
    ("startup", "app", "server", "cli", "models", "db.migrations", "__main__"),
)
LAYER_OF = {unit: level for level, units in enumerate(LAYERS) for unit in units}
DOMAINS = set(LAYERS[3])


def unit_of(module: str) -> str:
    """``garrison.records.query`` → ``records``; migrations are a unit of their own (they
    import the tables of every domain, so they sit at the top, above ``db``)."""
    parts = module.split(".")
    if parts[:3] == ["garrison", "db", "migrations"]:
        return "db.migrations"
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    name = ".".join(parts)
    return name.removesuffix(".__init__")


def imports_of(path: Path) -> Iterable[tuple[str, int]]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, node.lineno
            for alias in node.names:  # `from garrison import events` imports a unit
                yield f"{node.module}.{alias.name}", node.lineno


def import_graph(root: Path = SRC) -> dict[str, dict[str, list[str]]]:
    """unit → imported unit → where (``module:line``), for imports inside ``garrison``."""
    units = {unit_of(module_name(p)) for p in root.rglob("*.py")}
    graph: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(root.rglob("*.py")):
        source = unit_of(module_name(path))
        for target, line in imports_of(path):
            if not target.startswith("garrison.") and target != "garrison":
                continue
            unit = unit_of(target)
            if unit != source and unit in units:
                graph[source][unit].append(f"{module_name(path)}:{line}")
    return graph


def upward_imports(graph: Mapping[str, Mapping[str, list[str]]]) -> list[str]:
    found = []
    for source, targets in graph.items():
        for target, where in targets.items():
            if LAYER_OF[target] > LAYER_OF[source]:
                found.append(
                    f"{source} (layer {LAYER_OF[source]}) imports {target} "
                    f"(layer {LAYER_OF[target]}) at {', '.join(where)}"
                )
    return sorted(found)


def cycles(graph: Mapping[str, Mapping[str, object]]) -> list[list[str]]:
    """The strongly connected groups of more than one unit (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, {}):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(set(graph) | {t for targets in graph.values() for t in targets}):
        if node not in index:
            visit(node)
    return groups


@pytest.fixture(scope="module")
def graph() -> dict[str, dict[str, list[str]]]:
    return import_graph()


def test_every_unit_has_a_layer(graph: dict[str, dict[str, list[str]]]) -> None:
    units = {unit_of(module_name(p)) for p in SRC.rglob("*.py")}
    assert sorted(units - set(LAYER_OF)) == [], "give each new package a layer in LAYERS"


def test_imports_point_down(graph: dict[str, dict[str, list[str]]]) -> None:
    assert upward_imports(graph) == []


def test_no_package_cycles(graph: dict[str, dict[str, list[str]]]) -> None:
    assert cycles(graph) == []


def test_the_gateway_knows_no_domain(graph: dict[str, dict[str, list[str]]]) -> None:
    assert sorted(set(graph.get("gateway", {})) & DOMAINS) == []


def test_the_checks_catch_a_back_edge(graph: dict[str, dict[str, list[str]]]) -> None:
    """The checks themselves: a made-up import of a domain from ``db``, and a made-up
    cycle between two domains, are both reported."""
    broken = {source: dict(targets) for source, targets in graph.items()}
    broken.setdefault("db", {})["records"] = ["garrison.db.engine:1"]
    assert any(line.startswith("db (layer 1) imports records") for line in upward_imports(broken))
    assert ["db", "records"] in [sorted(set(g) & {"db", "records"}) for g in cycles(broken)]
    looped = {source: dict(targets) for source, targets in graph.items()}
    looped.setdefault("auth", {})["records"] = ["garrison.auth.users:1"]
    assert any({"auth", "records"} <= set(group) for group in cycles(looped))
