"""The error tree as ``garrison.errors`` draws it: every error class of the package is in
the drawing, under its parent, with its status and slug, and says in a line what it means.
Redraw with ``python scripts/draw_error_tree.py src/garrison/errors.py``."""

from __future__ import annotations

import importlib
import pkgutil

import garrison
from garrison import errors
from garrison.errors import GarrisonError


def _all_errors() -> list[type[GarrisonError]]:
    for module in pkgutil.walk_packages(garrison.__path__, "garrison."):
        if ".migrations" not in module.name and not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    found: list[type[GarrisonError]] = []
    todo: list[type[GarrisonError]] = [GarrisonError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_every_error_is_drawn_with_its_status_and_slug() -> None:
    drawing = errors.__doc__ or ""
    lines = {line.strip("│├└─ ").split()[0]: line for line in drawing.splitlines() if "  " in line}
    missing = [cls.__name__ for cls in _all_errors() if cls.__name__ not in lines]
    assert missing == [], "redraw: python scripts/draw_error_tree.py src/garrison/errors.py"
    for cls in _all_errors():
        line = lines[cls.__name__]
        assert line.rstrip().endswith(f"{cls.status}  {cls.slug}"), line


def test_every_error_says_what_it_means() -> None:
    undocumented = [cls.__qualname__ for cls in _all_errors() if not cls.__dict__.get("__doc__")]
    assert undocumented == []
