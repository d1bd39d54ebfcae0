"""``garrison config show``: the effective configuration, secrets redacted."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from garrison.cli.common import settings_or_exit

app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)


def _flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.extend(_flatten(value, f"{name}."))
        else:
            rows.append((name, value))
    return rows


@app.command("show")
def show(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Print the effective configuration (secrets redacted)."""
    settings = settings_or_exit(configure_logs=False)
    data = settings.redacted()
    if as_json:
        typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())
        return
    table = Table("setting", "value")
    for name, value in _flatten(data):
        table.add_row(name, "" if value is None else str(value))
    Console().print(table)
