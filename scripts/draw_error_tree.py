"""Redraw the error tree in src/garrison/errors.py's docstring from the live classes:
``python scripts/draw_error_tree.py src/garrison/errors.py`` (run after adding an error)."""

import importlib
import pathlib
import pkgutil
import sys

import garrison
from garrison.errors import GarrisonError

for m in pkgutil.walk_packages(garrison.__path__, "garrison."):
    if ".migrations" in m.name or m.name.endswith("__main__"):
        continue
    importlib.import_module(m.name)


def key(c):
    return (getattr(c, "status", 0), c.__module__ != "garrison.errors", c.__name__)


def walk(cls, prefix="", last=True, top=True):
    mod = cls.__module__.removeprefix("garrison.")
    name = cls.__name__ + ("" if mod == "errors" else f" ({mod})")
    out = [(prefix + ("" if top else ("└── " if last else "├── ")) + name, cls)]
    kids = sorted(cls.__subclasses__(), key=key)
    for i, k in enumerate(kids):
        out += walk(
            k, prefix + ("" if top else ("    " if last else "│   ")), i == len(kids) - 1, False
        )
    return out


rows = walk(GarrisonError)
w = max(len(t) for t, _ in rows) + 2
drawing = "\n".join(f"    {t.ljust(w)}{c.status}  {c.slug}".rstrip() for t, c in rows)
p = pathlib.Path(sys.argv[1])
s = p.read_text()
start = s.index("    GarrisonError")
end = s.index("\n\n", start)
p.write_text(s[:start] + drawing + s[end:])
print(len(rows), "classes")
