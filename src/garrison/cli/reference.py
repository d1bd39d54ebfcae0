"""``garrison reference create|load``: the development reference database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer

from garrison import models  # noqa: F401 - every domain's tables on the metadata
from garrison.cli.common import EXIT_CONFIG, fail, run_db, settings_or_exit
from garrison.privacy import reference

app = typer.Typer(help="The development reference database (anonymized).", no_args_is_help=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


def _print(counts: dict[str, int], as_json: bool, verb: str, where: Path) -> None:
    if as_json:
        typer.echo(orjson.dumps({"file": str(where), "rows": counts}).decode())
        return
    typer.echo(f"{verb} {where}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


@app.command("create")
def create(
    out: Annotated[Path, typer.Option("--out", help="The SQLite file to write (new).")],
    source: Annotated[
        str | None,
        typer.Option("--from-url", help="Read this database (e.g. a restored backup) instead."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Copy this instance (or --from-url) with every personal field anonymized."""
    settings = settings_or_exit()
    try:
        target = reference.check_out(out)
        counts = run_db(reference.create(settings, out=target, source_url=source))
    except reference.ReferenceRefused as exc:
        fail(str(exc.detail))
    _print(counts, as_json, "wrote", out)


@app.command("load")
def load(
    path: Annotated[Path, typer.Argument(help="A file made by `garrison reference create`.")],
    as_json: JsonOption = False,
) -> None:
    """Replace this development instance's data with the reference database."""
    settings = settings_or_exit()
    try:
        counts = run_db(reference.load(settings, path=reference.check_in(path)))
    except reference.ReferenceRefused as exc:
        fail(str(exc.detail), EXIT_CONFIG)
    _print(counts, as_json, "loaded", path)
