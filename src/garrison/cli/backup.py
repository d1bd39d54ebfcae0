"""``garrison backup create|list|show|verify|restore|prune|stream``: full backups, the log
archive and point-in-time restore. Long work shows progress on standard error; ``--json``
prints one JSON document on standard output. Bad input is one line and exit 1 or 2."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
import typer
from rich.console import Console
from rich.progress import (
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from garrison.cli.common import EXIT_CONFIG, fail, settings_or_exit
from garrison.ops.backup import manifest, service
from garrison.ops.backup.errors import BackupError
from garrison.ops.backup.schemas import BackupList, BackupOut
from garrison.settings import Settings

app = typer.Typer(help="Backups and point-in-time restore.", no_args_is_help=True)
T = TypeVar("T")
Json = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
_err = Console(stderr=True)


class _Bar:
    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = progress.add_task("starting", total=None)

    def step(self, text: str) -> None:
        self.progress.update(self.task, description=text)

    def advance(self, nbytes: int) -> None:
        self.progress.advance(self.task, nbytes)


@contextmanager
def _progress(quiet: bool) -> Iterator[service.Progress | None]:
    if quiet or not _err.is_terminal:
        yield None
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        console=_err,
        transient=True,
    ) as progress:
        yield _Bar(progress)


def _run(call: Callable[[], T]) -> T:
    try:
        return call()
    except BackupError as exc:
        fail(str(exc.detail or exc), exc.exit_code)
    except OSError as exc:
        fail(f"{type(exc).__name__}: {exc}")


def _emit(data: Any) -> None:
    typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{size} B"
        value /= 1024
    return f"{size} B"


def _ctx(settings: Settings, progress: service.Progress | None = None) -> service.Context:
    return _run(lambda: service.Context.of(settings, progress))


@app.command("create")
def create(
    full: Annotated[bool, typer.Option("--full", help="A full backup (the only kind).")] = True,
    as_json: Json = False,
) -> None:
    """Take a full backup now (mariadb-dump --single-transaction, or SQLite's backup API)."""
    settings = settings_or_exit(configure_logs=False)
    try:
        with _progress(as_json) as bar:
            ctx = _ctx(settings, bar)
            made = service.create_full_sync(ctx)
    except (BackupError, OSError) as exc:
        asyncio.run(service.report_failure(settings=settings, operation="create", error=exc))
        code = exc.exit_code if isinstance(exc, BackupError) else 1
        fail(str(getattr(exc, "detail", None) or exc), code)
    if as_json:
        _emit(BackupOut.of(made).model_dump(mode="json"))
        return
    typer.echo(
        f"backup {made.id}: {made.database}, {made.rows} rows in {len(made.tables)} tables, "
        f"{_human(made.size)} stored in {made.duration_seconds:.1f} s -> {ctx.storage.url}"
    )


@app.command("list")
def list_backups(as_json: Json = False) -> None:
    """Every finished full backup, oldest first."""
    settings = settings_or_exit(configure_logs=False)
    ctx = _ctx(settings)
    items = _run(lambda: manifest.list_all(ctx.storage))
    rows = [BackupOut.of(m, manifest.load_verification(ctx.storage, m.id)) for m in items]
    if as_json:
        _emit(BackupList(items=rows).model_dump(mode="json"))
        return
    table = Table("id", "engine", "database", "finished (UTC)", "size", "rows", "verified")
    for row in rows:
        check = row.verification
        verified = "-" if check is None else ("ok" if check.ok else "FAILED")
        table.add_row(
            row.id,
            row.engine,
            row.database,
            f"{row.finished_at:%Y-%m-%d %H:%M:%S}",
            _human(row.size_bytes),
            str(row.rows),
            verified,
        )
    Console().print(table)


@app.command("show")
def show(backup_id: Annotated[str, typer.Argument(metavar="ID")], as_json: Json = False) -> None:
    """One backup's manifest and its last verification."""
    settings = settings_or_exit(configure_logs=False)
    ctx = _ctx(settings)
    found = _run(lambda: manifest.load(ctx.storage, backup_id))
    out = BackupOut.of(found, manifest.load_verification(ctx.storage, backup_id))
    if as_json:
        _emit(out.model_dump(mode="json"))
        return
    for key, value in out.model_dump(mode="json").items():
        typer.echo(f"{key}: {value}")


@app.command("verify")
def verify(backup_id: Annotated[str, typer.Argument(metavar="ID")], as_json: Json = False) -> None:
    """Restore into a scratch database, compare row counts with the manifest, check the
    audit chain, record the restore time. Exit 1 when the backup does not hold up."""
    settings = settings_or_exit(configure_logs=False)
    with _progress(as_json) as bar:
        ctx = _ctx(settings, bar)
        result = _run(lambda: service.verify_sync(ctx, backup_id))
    if not result.ok:
        asyncio.run(
            service.report_failure(
                settings=settings, operation="verify", error=BackupError(result.detail)
            )
        )
    if as_json:
        _emit({"id": backup_id, **result.model_dump(mode="json")})
    else:
        typer.echo(
            f"{'ok' if result.ok else 'FAILED'}: backup {backup_id}: {result.detail}; "
            f"restored in {result.restore_seconds:.1f} s"
        )
    if not result.ok:
        raise typer.Exit(1)


def _moment(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        fail(f"--to-time {value!r} is not an ISO 8601 time (2026-12-01T21:30:00Z)", EXIT_CONFIG)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@app.command("restore")
def restore(
    backup_id: Annotated[str | None, typer.Argument(metavar="[ID]")] = None,
    latest: Annotated[bool, typer.Option("--latest", help="The latest backup and logs.")] = False,
    to_time: Annotated[
        str | None, typer.Option("--to-time", help="ISO 8601, UTC unless it says otherwise.")
    ] = None,
    to_gtid: Annotated[str | None, typer.Option("--to-gtid", help="MariaDB GTID.")] = None,
    target: Annotated[
        str, typer.Option("--target", help="DATABASE_URL to restore into (a new database).")
    ] = "",
    yes: Annotated[
        bool, typer.Option("--yes", help="Allow the live or a non-empty target.")
    ] = False,
    files_to: Annotated[
        Path | None,
        typer.Option(
            "--files-to",
            help="Also write the backup's uploaded files into this new or empty directory"
            " (as they were when the full backup was taken).",
        ),
    ] = None,
    as_json: Json = False,
) -> None:
    """Restore a backup (ID: that snapshot; --latest: to the end of the log archive; with
    --to-time/--to-gtid: to that point) into --target, never the live database unless --yes;
    with --files-to, its uploaded files too."""
    if (backup_id is None) == (not latest):
        fail("give a backup ID or --latest (one of them)", EXIT_CONFIG)
    if not target:
        fail("--target DATABASE_URL is required", EXIT_CONFIG)
    if to_time and to_gtid:
        fail("--to-time and --to-gtid exclude each other", EXIT_CONFIG)
    moment = _moment(to_time)
    settings = settings_or_exit(configure_logs=False)
    with _progress(as_json) as bar:
        ctx = _ctx(settings, bar)
        result = _run(
            lambda: service.restore_sync(
                ctx,
                backup_id=backup_id,
                target_url=target,
                to_time=moment,
                to_gtid=to_gtid,
                replay_logs=latest or moment is not None or to_gtid is not None,
                allow_live=yes,
                files_to=files_to,
            )
        )
    data = {
        "backup_id": result.backup_id,
        "target": result.target,
        "to_time": result.to_time.isoformat() if result.to_time else None,
        "to_gtid": result.to_gtid,
        "logs_replayed": result.logs_replayed,
        "seconds": round(result.seconds, 3),
        "rows": sum(result.tables.values()),
        "tables": result.tables,
        "files": result.files,
    }
    if as_json:
        _emit(data)
        return
    point = f" to {data['to_time'] or data['to_gtid']}" if moment or to_gtid else ""
    typer.echo(
        f"restored backup {result.backup_id}{point} into {result.target}: "
        f"{data['rows']} rows in {len(result.tables)} tables"
        + (f", {result.files} files into {files_to}" if result.files is not None else "")
        + f", {result.seconds:.1f} s"
    )


@app.command("prune")
def prune(as_json: Json = False) -> None:
    """Apply retention: keep BACKUP__KEEP_DAILY daily and BACKUP__KEEP_WEEKLY weekly fulls,
    and the logs they need."""
    settings = settings_or_exit(configure_logs=False)
    ctx = _ctx(settings)
    result = _run(lambda: service.prune_sync(ctx))
    if as_json:
        _emit(
            {
                "deleted": result.deleted,
                "kept": result.kept,
                "log_objects_deleted": result.log_objects_deleted,
            }
        )
        return
    typer.echo(
        f"deleted {len(result.deleted)} backup(s), kept {len(result.kept)}, "
        f"{result.log_objects_deleted} log object(s) deleted"
    )


@app.command("stream")
def stream() -> None:
    """Archive the transaction log continuously (mariadb-binlog --stop-never, or Litestream
    for SQLite) until SIGTERM/SIGINT. The worker runs this when BACKUP__STREAM is on."""
    settings = settings_or_exit()
    archiver = _run(lambda: service.archiver(settings))

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await archiver.run(stop)

    typer.echo(f"archiving the {archiver.engine} log to {archiver.storage.url}", err=True)
    _run(lambda: asyncio.run(run()))
