"""Expand/contract: which pending migrations a release may run while the previous release
still serves.

Every revision declares ``destructive`` (True for a *contract* step: dropping or renaming a
column or table, narrowing a type, adding a constraint old code can violate). A destructive
revision also names ``safe_after``: the first release whose code no longer uses what it
removes. ``garrison deploy`` runs migrations before the new colour starts, while the old
colour serves, so it refuses a destructive revision unless the serving release is at least
``safe_after``. A revision that declares nothing is an expand step (additive).

``python -m garrison.ops.deploy.migrations`` prints the plan of the release it runs in as
JSON (the deploy runs it with the *new* release's interpreter and environment).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from dataclasses import asdict, dataclass
from typing import Any

from alembic.script import ScriptDirectory


@dataclass(frozen=True)
class Step:
    revision: str
    destructive: bool
    safe_after: str | None
    doc: str


class IncompatibleMigration(Exception):
    """A pending migration would break the release that still serves."""


def _version_key(version: str) -> tuple[int, ...]:
    """Release numbers padded to four, then 0 for a pre-release (``1.4.0rc1`` < ``1.4.0``)."""
    match = re.match(r"^\s*v?(\d+(?:\.\d+)*)(.*)$", version.split("+")[0])
    if match is None:
        return (0, 0, 0, 0, 0)
    numbers = [int(part) for part in match.group(1).split(".")][:4]
    numbers += [0] * (4 - len(numbers))
    final = 0 if re.match(r"^[.-]?(a|b|c|rc|alpha|beta|pre|preview|dev)", match.group(2)) else 1
    return (*numbers, final)


def steps(scripts: ScriptDirectory, pending: tuple[str, ...]) -> list[Step]:
    found = []
    for revision in pending:
        script = scripts.get_revision(revision)
        assert script is not None
        module: Any = script.module
        found.append(
            Step(
                revision=revision,
                destructive=bool(getattr(module, "destructive", False)),
                safe_after=getattr(module, "safe_after", None),
                doc=(script.doc or "").strip(),
            )
        )
    return found


def check_compatible(plan: list[Step], *, serving: str | None) -> None:
    """Raise ``IncompatibleMigration`` for a contract step the serving release cannot take.
    ``serving`` is the version of the release that serves now (None: nothing serves)."""
    if serving is None:
        return
    for step in plan:
        if not step.destructive:
            continue
        if step.safe_after is None or _version_key(serving) < _version_key(step.safe_after):
            needs = f"release {step.safe_after} or later" if step.safe_after else "no release"
            raise IncompatibleMigration(
                f"migration {step.revision} is destructive (contract) and release {serving} "
                f"still serves; it is safe once {needs} serves"
            )


async def _plan(serving: str | None, apply: bool) -> dict[str, Any]:
    from garrison.db import migrate
    from garrison.settings import load_settings

    settings = load_settings()
    status = await migrate.status(settings.db_url, settings.db)
    plan = steps(migrate.script_directory(), status.pending)
    result: dict[str, Any] = {
        "current": sorted(status.current),
        "pending": [asdict(step) for step in plan],
        "applied": False,
    }
    try:
        check_compatible(plan, serving=serving)
    except IncompatibleMigration as exc:
        result["refused"] = str(exc)
        return result
    if apply and plan:
        await migrate.upgrade(settings.db_url, settings.db)
        result["applied"] = True
    return result


def main(argv: list[str] | None = None) -> None:
    """``--serving VERSION`` (the release that serves now) and ``--apply`` (migrate when
    the plan is compatible); prints one JSON document."""
    parser = argparse.ArgumentParser(prog="python -m garrison.ops.deploy.migrations")
    parser.add_argument("--serving", default=None)
    parser.add_argument("--apply", action="store_true")
    args = parser.parse_args(argv)
    try:
        result = asyncio.run(_plan(args.serving, args.apply))
    except Exception as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}))
        sys.exit(1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
