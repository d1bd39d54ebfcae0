"""``garrison drill pitr``: the backup disaster drill on throw-away servers, printing the
measured RPO and RTO (and what a full backup costs the writers)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import orjson
import typer

from garrison.cli.common import fail


class Method(StrEnum):
    dump = "dump"
    physical = "physical"


app = typer.Typer(help="Disaster drills on throw-away servers.", no_args_is_help=True)


@app.command("pitr")
def pitr(
    size_mb: Annotated[int, typer.Option("--size-mb", min=1, help="Database size.")] = 1024,
    s3: Annotated[bool, typer.Option("--s3", help="Artifacts in SeaweedFS (S3).")] = False,
    rate: Annotated[float, typer.Option("--rate", min=1, help="Writes per second.")] = 100.0,
    method: Annotated[
        Method, typer.Option("--method", help="Full backup: mariadb-dump or mariadb-backup.")
    ] = Method.dump,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Fill a private mariadbd, back it up under writes, archive its binlog, SIGKILL it,
    restore the latest point into a fresh server; print RPO and RTO."""
    from garrison.ops.backup.drill import run_drill

    def say(text: str) -> None:
        if not as_json:
            typer.echo(f"- {text}", err=True)

    try:
        result = run_drill(size_mb=size_mb, use_s3=s3, report=say, rate=rate, method=method.value)
    except Exception as exc:
        fail(f"drill failed: {type(exc).__name__}: {exc}")
    if as_json:
        typer.echo(orjson.dumps(result.as_json(), option=orjson.OPT_INDENT_2).decode())
        return
    typer.echo(
        f"RPO: {result.writes_recovered}/{result.writes_acknowledged} acknowledged writes "
        f"recovered ({result.writes_lost} lost; oldest lost write acknowledged "
        f"{result.rpo_seconds:.3f} s before the kill)\n"
        f"RTO: restore of {size_mb} MB ({result.restored_rows} rows) in "
        f"{result.rto_seconds:.1f} s from {result.storage} storage "
        f"({result.bytes_stored / 1e6:.1f} MB stored)\n"
        f"Full backup ({result.method}) under load: {result.backup_seconds:.1f} s; write p99 "
        f"{result.write_p99_before_ms:.1f} ms before, {result.write_p99_during_ms:.1f} ms during "
        f"(x{result.p99_ratio:.2f}); longest write during it {result.write_max_during_ms:.1f} ms"
    )
