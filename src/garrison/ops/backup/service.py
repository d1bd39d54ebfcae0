"""What the commands, the admin API and the worker call. The work is blocking (tools,
files, storage), so each entry point runs it in a thread; it never touches Garrison's own
tables except through ``events`` (a failed backup is audited)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from garrison.crypto import Keyring, keyring_for
from garrison.files.storage import local_root
from garrison.ops.backup import artifact, logs, manifest, mariadb, objects, physical, sqlite
from garrison.ops.backup.errors import BackupError, BackupNotFound, OutsideWindow
from garrison.ops.backup.manifest import Artifact, Engine, Manifest, Verification
from garrison.ops.backup.storage import Storage, open_storage
from garrison.ops.backup.tools import Conn, run_sql
from garrison.settings import Settings


class Progress(Protocol):
    def step(self, text: str) -> None: ...
    def advance(self, nbytes: int) -> None: ...


class _Quiet:
    def step(self, text: str) -> None:
        return None

    def advance(self, nbytes: int) -> None:
        return None


@dataclass
class Context:
    settings: Settings
    storage: Storage
    keyring: Keyring
    engine: Engine
    progress: Progress

    @classmethod
    def of(cls, settings: Settings, progress: Progress | None = None) -> Context:
        return cls(
            settings=settings,
            storage=open_storage(settings.backup, settings.data_dir),
            keyring=keyring_for(settings),
            engine="sqlite" if settings.is_sqlite else "mariadb",
            progress=progress or _Quiet(),
        )

    @property
    def tools_dir(self) -> str | None:
        return self.settings.backup.tools_dir

    def work_dir(self) -> tempfile.TemporaryDirectory[str]:
        base = self.settings.data_dir / "backup-spool"
        base.mkdir(parents=True, exist_ok=True)
        return tempfile.TemporaryDirectory(dir=base, prefix="work-")


def _metered(chunks: Iterable[bytes], progress: Progress) -> Iterator[bytes]:
    for chunk in chunks:
        progress.advance(len(chunk))
        yield chunk


# -- create ---------------------------------------------------------------------------------


def _yield_cpu() -> None:
    """Lower this thread's CPU priority (nice 10; threads it starts inherit it): compressing
    and encrypting are a backup's main cost, and the database's writers come first."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


def create_full_sync(ctx: Context) -> Manifest:
    _yield_cpu()
    started = datetime.now(UTC)
    backup_id = manifest.new_id(started)
    key = manifest.prefix(backup_id) + "data.zst.enc"
    with ctx.work_dir() as tmp:
        out = Path(tmp) / "artifact"
        if ctx.engine == "sqlite":
            source = sqlite.path_of(ctx.settings.db_url)
            ctx.progress.step(f"snapshot of {source.name} (SQLite backup API)")
            snap = Path(tmp) / "snapshot.db"
            tables = sqlite.snapshot(source, snap)
            ctx.progress.step("compressing and encrypting")
            sealed = artifact.seal(
                _metered(artifact.read_chunks(snap), ctx.progress), ctx.keyring, out
            )
            method, database, position = "sqlite-backup-api", source.name, manifest.Position()
        else:
            conn = Conn.parse(ctx.settings.db_url)
            if ctx.settings.backup.method == "physical":
                copy = Path(tmp) / "physical"
                ctx.progress.step(f"mariadb-backup --backup {conn.database}, then --prepare")
                position, tables = physical.backup(conn, copy, tools_dir=ctx.tools_dir)
                ctx.progress.step("archiving, compressing and encrypting the prepared copy")
                chunks = physical.tar_chunks(copy)
                sealed = artifact.seal(_metered(chunks, ctx.progress), ctx.keyring, out)
                shutil.rmtree(copy)
                method, database = physical.METHOD, conn.database
            else:
                mariadb.require_binlog(conn, tools_dir=ctx.tools_dir)
                ctx.progress.step(f"mariadb-dump --single-transaction {conn.database}")
                scan = mariadb.DumpScan()
                chunks = mariadb.dump(conn, tools_dir=ctx.tools_dir, scan=scan)
                sealed = artifact.seal(_metered(chunks, ctx.progress), ctx.keyring, out)
                method, database, position = "mariadb-dump", conn.database, scan.position
                tables = scan.tables
        ctx.progress.step(f"uploading to {ctx.storage.url}")
        ctx.storage.put_file(key, out)
        out.unlink()
        artifacts = [
            Artifact(key=key, size=sealed.size, sha256=sealed.sha256, plain_size=sealed.plain_size)
        ]
        files = _pack_files(ctx, backup_id, Path(tmp), artifacts)
    result = Manifest(
        id=backup_id,
        engine=ctx.engine,
        method=method,
        database=database,
        started_at=started,
        finished_at=datetime.now(UTC),
        key_id=ctx.keyring.current_id,
        artifacts=artifacts,
        tables=tables,
        position=position,
        files=files,
    )
    manifest.save(ctx.storage, result)
    return result


def _pack_files(ctx: Context, backup_id: str, tmp: Path, artifacts: list[Artifact]) -> int:
    """The uploaded files, after the database snapshot, as a second artifact; their count."""
    root = local_root(ctx.settings)
    archive, sealed_path = tmp / "files.tar", tmp / "files.enc"
    if root is None:
        ctx.progress.step(f"uploaded files in s3://{ctx.settings.files.s3_bucket}")
        count = objects.pack_storage(ctx.settings, archive, tmp)
    else:
        ctx.progress.step(f"uploaded files under {root}")
        count = objects.pack(root, archive)
    sealed = artifact.seal(
        _metered(artifact.read_chunks(archive), ctx.progress), ctx.keyring, sealed_path
    )
    archive.unlink()
    key = manifest.prefix(backup_id) + objects.KEY
    ctx.storage.put_file(key, sealed_path)
    sealed_path.unlink()
    artifacts.append(
        Artifact(key=key, size=sealed.size, sha256=sealed.sha256, plain_size=sealed.plain_size)
    )
    return count


def _files_artifact(found: Manifest) -> Artifact | None:
    return next((a for a in found.artifacts if a.key.endswith("/" + objects.KEY)), None)


def _fetch_files(ctx: Context, found: Manifest, tmp: Path) -> Path | None:
    """Download, check and decrypt the backup's files archive (None: it has none)."""
    item = _files_artifact(found)
    if item is None:
        return None
    sealed, plain = tmp / "files.enc", tmp / "files.tar"
    name = f"backup {found.id} (files)"
    ctx.storage.get_file(item.key, sealed)
    artifact.check(sealed, sha256=item.sha256, size=item.size, name=name)
    artifact.open_to(sealed, ctx.keyring, plain, name=name)
    sealed.unlink()
    return plain


# -- fetch and check before anything is written ------------------------------------------


def _fetch_full(ctx: Context, found: Manifest, tmp: Path) -> Path:
    """Download, check and decrypt the full backup's artifact; the plaintext file: the
    SQLite database, or for MariaDB a dump (a physical backup is dumped from a scratch server
    on its prepared copy)."""
    item = found.artifacts[0]  # the database's; the files archive, if any, comes after it
    sealed = tmp / "full.enc"
    ctx.progress.step(f"downloading backup {found.id}")
    ctx.storage.get_file(item.key, sealed)
    artifact.check(sealed, sha256=item.sha256, size=item.size, name=f"backup {found.id}")
    plain = tmp / ("full.db" if found.engine == "sqlite" else "full.sql")
    physical_copy = found.method == physical.METHOD
    opened = tmp / "full.tar" if physical_copy else plain
    ctx.progress.step("decrypting and decompressing")
    artifact.open_to(sealed, ctx.keyring, opened, name=f"backup {found.id}")
    sealed.unlink()
    if physical_copy:
        ctx.progress.step("starting a scratch server on the prepared copy and dumping it")
        physical.dump_from_archive(opened, plain, database=found.database, tools_dir=ctx.tools_dir)
    return plain


def _fetch_binlogs(ctx: Context, first: str, tmp: Path) -> list[Path]:
    plan = logs.plan_binlogs(logs.binlog_pieces(ctx.storage), first)
    files = []
    for name, keys in plan:
        path = tmp / name
        ctx.progress.step(f"fetching {name} ({len(keys)} piece(s))")
        with path.open("wb") as handle:
            for key in keys:
                piece = tmp / "piece.enc"
                ctx.storage.get_file(key, piece)
                plain = tmp / "piece"
                artifact.open_to(piece, ctx.keyring, plain, name=key)
                handle.write(plain.read_bytes())
        files.append(path)
    if files:  # the live file may end inside an event that was still arriving
        data = files[-1].read_bytes()
        whole, _ = mariadb.complete_events(data)
        files[-1].write_bytes(data[:whole])
    return files


def _fetch_tree(ctx: Context, tmp: Path) -> Path:
    replica = tmp / "replica"
    state = logs.load_state(ctx.storage, "sqlite")
    entries = [k for k, _ in ctx.storage.keys("logs/sqlite/") if k != logs.state_key("sqlite")]
    if not entries:
        raise BackupNotFound("no SQLite log archive (run `garrison backup stream`)")
    for key in entries:
        rel = key[len("logs/sqlite/") :]
        target = replica / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        piece = tmp / "piece.enc"
        ctx.storage.get_file(key, piece)
        artifact.open_to(piece, ctx.keyring, target, name=key)
        stamp = state.mtimes.get(rel) if state else None
        if stamp is not None:
            os.utime(target, (stamp, stamp))
    return replica


# -- restore ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreResult:
    backup_id: str
    target: str
    to_time: datetime | None
    to_gtid: str | None
    logs_replayed: int
    seconds: float
    tables: dict[str, int]
    files: int | None = None  # files written to --files-to (None: not asked, or none held)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def choose(ctx: Context, *, backup_id: str | None, to_time: datetime | None) -> Manifest:
    if backup_id is not None:
        found = manifest.load(ctx.storage, backup_id)
        if to_time is not None and found.finished_at > to_time:
            raise OutsideWindow(
                f"{to_time.isoformat()} is before backup {found.id} finished "
                f"({found.finished_at.isoformat()}); choose an older backup or --latest"
            )
        return found
    fulls = [m for m in manifest.list_all(ctx.storage) if m.engine == ctx.engine]
    if not fulls:
        raise BackupNotFound(f"no {ctx.engine} backup in {ctx.storage.url}")
    if to_time is None:
        return fulls[-1]
    before = [m for m in fulls if m.finished_at <= to_time]
    if not before:
        raise OutsideWindow(
            f"{to_time.isoformat()} is before the oldest backup "
            f"({fulls[0].finished_at.isoformat()})"
        )
    return before[-1]


def _check_window(ctx: Context, to_time: datetime | None) -> logs.LogState | None:
    state = logs.load_state(ctx.storage, ctx.engine)
    if to_time is None:
        return state
    if state is None:
        raise OutsideWindow("there is no log archive, so no point in time can be restored")
    if to_time > state.archived_at:
        raise OutsideWindow(
            f"{to_time.isoformat()} is after the end of the archived log "
            f"({state.archived_at.isoformat()})"
        )
    return state


def restore_sync(
    ctx: Context,
    *,
    backup_id: str | None,
    target_url: str,
    to_time: datetime | None = None,
    to_gtid: str | None = None,
    replay_logs: bool = True,
    allow_live: bool = False,
    files_to: Path | None = None,
) -> RestoreResult:
    """Restore the database into ``target_url`` and, with ``files_to``, the backup's
    uploaded files into that (absent or empty) directory. Everything is fetched and checked
    before anything is written."""
    if files_to is not None:
        objects.check_target(files_to)
    with ctx.work_dir() as tmp_name:
        tmp = Path(tmp_name)
        files = None
        if files_to is not None:
            found = choose(ctx, backup_id=backup_id, to_time=_utc(to_time) if to_time else None)
            files = _fetch_files(ctx, found, tmp)
            if files is None:
                raise BackupNotFound(
                    f"backup {found.id} holds no uploaded files (taken before they were "
                    "included); restore without --files-to"
                )
        result = _restore_database(
            ctx,
            backup_id=backup_id,
            target_url=target_url,
            to_time=to_time,
            to_gtid=to_gtid,
            replay_logs=replay_logs,
            allow_live=allow_live,
        )
        if files is None or files_to is None:
            return result
        ctx.progress.step(f"writing the uploaded files into {files_to}")
        written = objects.unpack(files, files_to, name=f"backup {result.backup_id} (files)")
        return replace(result, files=written)


def _restore_database(
    ctx: Context,
    *,
    backup_id: str | None,
    target_url: str,
    to_time: datetime | None,
    to_gtid: str | None,
    replay_logs: bool,
    allow_live: bool,
) -> RestoreResult:
    started = time.perf_counter()
    to_time = _utc(to_time) if to_time else None
    if to_time is not None and to_time > datetime.now(UTC):
        raise OutsideWindow(f"{to_time.isoformat()} is in the future")
    if to_gtid is not None and ctx.engine == "sqlite":
        raise OutsideWindow("--to-gtid is for MariaDB; SQLite restores with --to-time")
    found = choose(ctx, backup_id=backup_id, to_time=to_time)
    state = _check_window(ctx, to_time) if replay_logs else None
    with ctx.work_dir() as tmp_name:
        tmp = Path(tmp_name)
        if ctx.engine == "sqlite":
            return _restore_sqlite(
                ctx,
                found,
                tmp,
                target_url,
                to_time,
                replay_logs and state is not None,
                allow_live,
                started,
            )
        conn = Conn.parse(target_url)
        plain = _fetch_full(ctx, found, tmp)
        files: list[Path] = []
        if replay_logs and state is not None and found.position.binlog_file:
            files = _fetch_binlogs(ctx, found.position.binlog_file, tmp)
        elif to_time is not None or to_gtid is not None:
            raise OutsideWindow("there is no log archive to replay to that point")
        live = _live_conn(ctx)
        mariadb.check_target(conn, live, allow_live=allow_live, tools_dir=ctx.tools_dir)
        ctx.progress.step(f"loading the dump into {conn.database}")
        mariadb.load_dump(conn, plain, tools_dir=ctx.tools_dir)
        plain.unlink()
        stop = to_time + timedelta(seconds=1) if to_time else None
        mariadb.replay(
            conn,
            files,
            live_database=found.database,
            start_pos=found.position.binlog_pos or 4,
            stop_datetime=stop,
            stop_gtid=to_gtid,
            tools_dir=ctx.tools_dir,
            on_progress=ctx.progress.step,
        )
        tables = mariadb.table_counts(conn, tools_dir=ctx.tools_dir)
    return RestoreResult(
        found.id,
        conn.redacted(),
        to_time,
        to_gtid,
        len(files),
        time.perf_counter() - started,
        tables,
    )


def _live_conn(ctx: Context) -> Conn | None:
    try:
        return Conn.parse(ctx.settings.db_url)
    except BackupError:
        return None


def _restore_sqlite(
    ctx: Context,
    found: Manifest,
    tmp: Path,
    target_url: str,
    to_time: datetime | None,
    use_logs: bool,
    allow_live: bool,
    started: float,
) -> RestoreResult:
    target = sqlite.path_of(target_url)
    live = sqlite.path_of(ctx.settings.db_url) if ctx.settings.is_sqlite else None
    sqlite.check_target(target, live, allow_live=allow_live)
    if use_logs:
        replica = _fetch_tree(ctx, tmp)
        plain = tmp / "restored.db"
        ctx.progress.step("litestream restore" + (f" to {to_time.isoformat()}" if to_time else ""))
        sqlite.litestream_restore(replica, plain, timestamp=to_time)
    else:
        plain = _fetch_full(ctx, found, tmp)
    tables = sqlite.table_counts(plain)
    sqlite.install(plain, target)
    return RestoreResult(
        found.id,
        str(target),
        to_time,
        None,
        1 if use_logs else 0,
        time.perf_counter() - started,
        tables,
    )


# -- verify ------------------------------------------------------------------------------


def verify_sync(ctx: Context, backup_id: str) -> Verification:
    """Restore into a scratch database, compare row counts, check the audit chain."""
    found = manifest.load(ctx.storage, backup_id)
    started = time.perf_counter()
    with ctx.work_dir() as tmp_name:
        tmp = Path(tmp_name)
        if found.engine == "sqlite":
            scratch_path = tmp / "scratch.db"
            plain = _fetch_full(ctx, found, tmp)
            plain.replace(scratch_path)
            counts = sqlite.table_counts(scratch_path)
            seconds = time.perf_counter() - started
            audit = _verify_audit(ctx, f"sqlite+aiosqlite:///{scratch_path}")
            drop: Callable[[], None] = lambda: None  # noqa: E731
        else:
            live = Conn.parse(ctx.settings.db_url)
            scratch = live.with_database(f"garrison_verify_{found.id[-4:]}_{int(time.time())}")
            plain = _fetch_full(ctx, found, tmp)
            run_sql(
                scratch,
                f"CREATE DATABASE `{scratch.database}`",
                tools_dir=ctx.tools_dir,
                database=False,
            )

            def drop() -> None:
                run_sql(
                    scratch,
                    f"DROP DATABASE IF EXISTS `{scratch.database}`",
                    tools_dir=ctx.tools_dir,
                    database=False,
                )

            try:
                ctx.progress.step(f"restoring into scratch database {scratch.database}")
                mariadb.load_dump(scratch, plain, tools_dir=ctx.tools_dir)
                counts = mariadb.table_counts(scratch, tools_dir=ctx.tools_dir)
                seconds = time.perf_counter() - started
                audit = _verify_audit(ctx, scratch.url.render_as_string(hide_password=False))
            except BaseException:
                drop()
                raise
        drop()
        files_problem = _verify_files(ctx, found, tmp)
    wrong = {t: (n, counts.get(t)) for t, n in found.tables.items() if counts.get(t) != n}
    problems = [f"{t}: {got} rows, the manifest says {want}" for t, (want, got) in wrong.items()]
    if files_problem:
        problems.append(files_problem)
    if audit[1]:
        problems.append(audit[1])
    result = Verification(
        ok=not problems,
        verified_at=datetime.now(UTC),
        restore_seconds=round(seconds, 3),
        detail="; ".join(problems)
        if problems
        else f"{len(counts)} tables, {sum(counts.values())} rows match; {audit[2]}"
        + (f"; {found.files} uploaded files" if found.files is not None else ""),
        tables_checked=len(found.tables),
        audit_entries_checked=audit[0],
    )
    manifest.save_verification(ctx.storage, found.id, result)
    return result


def _verify_files(ctx: Context, found: Manifest, tmp: Path) -> str | None:
    """The files archive opens and holds as many files as the manifest says (None: so)."""
    if found.files is None:
        return None
    try:
        archive = _fetch_files(ctx, found, tmp)
        if archive is None:
            return f"the manifest counts {found.files} files but the backup has no archive"
        held = objects.count(archive, name=f"backup {found.id} (files)")
    except BackupError as exc:
        return str(exc.detail)
    return None if held == found.files else f"files: {held}, the manifest says {found.files}"


def _verify_audit(ctx: Context, url: str) -> tuple[int, str | None, str]:
    """(entries checked, problem or None, summary) of the audit chain in a restored copy."""
    from garrison.audit import retention
    from garrison.audit.verify import verify_chain
    from garrison.db.engine import Database

    async def run() -> tuple[int, str | None, str]:
        db = Database(url, ctx.settings.db)
        try:
            async with db.read_session() as session:
                report = await verify_chain(
                    session, checkpoint_key=retention.signing_key(ctx.settings)
                )
        except Exception as exc:
            if "audit_" in str(exc) and ("exist" in str(exc) or "no such table" in str(exc)):
                return 0, None, "no audit log in this database"
            return 0, f"audit chain check failed: {type(exc).__name__}", ""
        finally:
            await db.dispose()
        if report.broken is not None:
            return report.checked, f"audit chain broken at #{report.broken.seq}", ""
        return report.checked, None, f"audit chain intact ({report.checked} entries)"

    return asyncio.run(run())


# -- retention --------------------------------------------------------------------------


def retained(fulls: list[Manifest], *, daily: int, weekly: int) -> set[str]:
    """The newest backup of each of the last ``daily`` days that have one, and of each of
    the last ``weekly`` ISO weeks that have one."""
    keep: set[str] = set()
    days: dict[object, Manifest] = {}
    weeks: dict[object, Manifest] = {}
    for item in sorted(fulls, key=lambda m: m.started_at, reverse=True):
        days.setdefault(item.started_at.date(), item)
        weeks.setdefault(item.started_at.isocalendar()[:2], item)
    keep.update(m.id for m in list(days.values())[:daily])
    keep.update(m.id for m in list(weeks.values())[:weekly])
    return keep


@dataclass(frozen=True)
class PruneResult:
    deleted: list[str]
    kept: list[str]
    log_objects_deleted: int


def prune_sync(ctx: Context) -> PruneResult:
    config = ctx.settings.backup
    fulls = [m for m in manifest.list_all(ctx.storage) if m.engine == ctx.engine]
    keep = retained(fulls, daily=config.keep_daily, weekly=config.keep_weekly)
    doomed = [m for m in fulls if m.id not in keep]
    for item in doomed:
        keys = [k for k, _ in ctx.storage.keys(manifest.prefix(item.id))]
        # The manifest goes first: a half-deleted backup is never listed.
        keys.sort(key=lambda k: not k.endswith(manifest.MANIFEST))
        ctx.storage.delete(keys)
    log_deleted = 0
    kept = [m for m in fulls if m.id in keep]
    if ctx.engine == "mariadb" and kept:
        oldest = min(
            (m.position.binlog_file for m in kept if m.position.binlog_file),
            default=None,
            key=lambda n: int(n.rpartition(".")[2]),
        )
        if oldest is not None:
            limit = int(oldest.rpartition(".")[2])
            stale = [
                key
                for name, pieces in logs.binlog_pieces(ctx.storage).items()
                if int(name.rpartition(".")[2]) < limit
                for _s, _e, key in pieces
            ]
            ctx.storage.delete(stale)
            log_deleted = len(stale)
    return PruneResult([m.id for m in doomed], [m.id for m in kept], log_deleted)


# -- status (health, metrics) ------------------------------------------------------------


@dataclass(frozen=True)
class Status:
    last_full: Manifest | None
    log_state: logs.LogState | None

    def full_age(self, now: datetime) -> float | None:
        if self.last_full is None:
            return None
        return (now - self.last_full.finished_at).total_seconds()

    def log_lag(self, now: datetime) -> float | None:
        if self.log_state is None:
            return None
        return (now - self.log_state.archived_at).total_seconds()


def status_sync(ctx: Context) -> Status:
    fulls = [m for m in manifest.list_all(ctx.storage) if m.engine == ctx.engine]
    return Status(fulls[-1] if fulls else None, logs.load_state(ctx.storage, ctx.engine))


# -- async entry points ------------------------------------------------------------------


async def create_backup(*, settings: Settings, progress: Progress | None = None) -> Manifest:
    # A thread of its own, not the shared pool's: it lowers its priority for good.
    return await _own_thread(create_full_sync, Context.of(settings, progress))


async def _own_thread(work: Callable[[Context], Manifest], ctx: Context) -> Manifest:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Manifest] = loop.create_future()

    def settle(outcome: Manifest | BaseException) -> None:
        if future.done():  # the caller was cancelled; the backup finished anyway
            return
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)

    def run() -> None:
        try:
            outcome: Manifest | BaseException = work(ctx)
        except BaseException as exc:
            outcome = exc
        loop.call_soon_threadsafe(settle, outcome)

    threading.Thread(target=run, name="garrison-backup", daemon=True).start()
    return await future


async def list_backups(*, settings: Settings) -> list[Manifest]:
    ctx = Context.of(settings)
    return await asyncio.to_thread(manifest.list_all, ctx.storage)


async def get_backup(*, settings: Settings, backup_id: str) -> tuple[Manifest, Verification | None]:
    ctx = Context.of(settings)

    def run() -> tuple[Manifest, Verification | None]:
        return manifest.load(ctx.storage, backup_id), manifest.load_verification(
            ctx.storage, backup_id
        )

    return await asyncio.to_thread(run)


async def verify_backup(
    *, settings: Settings, backup_id: str, progress: Progress | None = None
) -> Verification:
    return await asyncio.to_thread(verify_sync, Context.of(settings, progress), backup_id)


async def backup_status(*, settings: Settings) -> Status:
    return await asyncio.to_thread(status_sync, Context.of(settings))


def archiver(settings: Settings) -> logs.Archiver:
    """The log archiver for the configured database."""
    ctx = Context.of(settings)
    spool = logs.spool_dir(settings.data_dir, ctx.engine)
    if ctx.engine == "sqlite":
        db = sqlite.path_of(settings.db_url)
        command = lambda _state: sqlite.replicate_command(db, spool)  # noqa: E731
        env = None
    else:
        conn = Conn.parse(settings.db_url)
        from garrison.ops.backup.tools import tool

        binlog = tool("mariadb-binlog", ctx.tools_dir)

        def command(state: logs.LogState | None) -> list[str]:
            first = _resume_file(ctx, conn, state)
            return [
                binlog,
                *conn.args(),
                "--read-from-remote-server",
                "--raw",
                "--stop-never",
                f"--result-file={spool}/",
                first,
            ]

        env = conn.env()
    return logs.Archiver(
        engine=ctx.engine,
        storage=ctx.storage,
        keyring=ctx.keyring,
        spool=spool,
        command=command,
        env=env,
        upload_interval=settings.backup.upload_interval,
    )


def _resume_file(ctx: Context, conn: Conn, state: logs.LogState | None) -> str:
    """Where archiving (re)starts: the newest file already archived, else the file the
    latest full backup continues in, else the server's oldest binary log."""
    if state is not None and state.files:
        return max(state.files, key=lambda n: int(n.rpartition(".")[2]))
    fulls = [m for m in manifest.list_all(ctx.storage) if m.engine == "mariadb"]
    if fulls and fulls[-1].position.binlog_file:
        return fulls[-1].position.binlog_file
    out = run_sql(conn, "SHOW BINARY LOGS", tools_dir=ctx.tools_dir)
    names = [line.split("\t")[0] for line in out.splitlines() if line]
    if not names:
        raise BackupError("the server has no binary log: enable log_bin and binlog_format=ROW")
    return names[0]


async def report_failure(*, settings: Settings, operation: str, error: BaseException) -> None:
    """A failed backup or verification: an audited event and an e-mail to the admins."""
    from email.message import EmailMessage

    from garrison import events
    from garrison.auth import users
    from garrison.db.engine import Database
    from garrison.log import get_logger
    from garrison.mail.mailer import open_mailer

    reason = str(error) or type(error).__name__
    log = get_logger("garrison.backup")
    log.error("backup.failed", operation=operation, error=reason[:300])
    db = Database(settings.db_url, settings.db)
    try:
        await events.emit_standalone(
            db,
            events.Event(
                action=f"backup.{operation}.failed",
                actor=events.Actor.system(),
                target_type="backup",
                outcome="failed",
                data={"operation": operation, "error": reason[:500]},
            ),
        )
        async with db.read_session() as session:
            recipients = await users.emails_with_role(session, role="admin")
    except Exception as exc:  # the database may be what failed
        log.error("backup.failure_not_audited", error=type(exc).__name__)
        recipients = []
    finally:
        await db.dispose()
    mailer = open_mailer(settings)
    for address in recipients:
        message = EmailMessage()
        message["To"] = address
        message["Subject"] = f"Garrison: backup {operation} failed"
        message.set_content(
            f"The {operation} of the {settings.env} backups failed:\n\n{reason}\n\n"
            "Run `garrison backup list` and the command again to see where it stops."
        )
        try:
            await mailer.send(message)
        except Exception as exc:
            log.error("backup.alert_not_sent", error=type(exc).__name__)
