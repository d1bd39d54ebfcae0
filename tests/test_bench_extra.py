"""``make bench`` installs only the runtime dependencies and the ``bench`` extra: every
third-party module the benchmark code imports must come from one of those (directly or as a
dependency of one), or a fresh clone's ``make bench`` fails at its first import."""

from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _name(requirement: str) -> str:
    return re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _closure(roots: set[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo.extend(_name(r) for r in requires if "extra ==" not in r)
    return seen


def _bench_imports() -> set[str]:
    modules: set[str] = set()
    for path in BENCH.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - {"garrison", "bench", "tests", "__future__"}


def test_the_bench_extra_covers_every_import() -> None:
    requires = metadata.requires("garrison") or []
    runtime = {_name(r) for r in requires if "extra ==" not in r}
    bench = {_name(r) for r in requires if re.search(r"extra\s*==\s*['\"]bench['\"]", r)}
    installed = _closure(runtime | bench | {"garrison"})
    providers = metadata.packages_distributions()
    missing = {
        module: providers.get(module, ["?"])
        for module in _bench_imports()
        if not {d.lower().replace("_", "-") for d in providers.get(module, [])} & installed
    }
    assert missing == {}, "add these to the bench extra in pyproject.toml"
