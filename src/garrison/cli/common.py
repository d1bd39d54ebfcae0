"""What every command shares: loading settings (exit 2 on a bad one) and failing cleanly."""

from __future__ import annotations

import sys
from collections.abc import Coroutine
from typing import Any, NoReturn, TextIO, TypeVar, cast

import typer
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from garrison.audit import install_keyring
from garrison.log import configure_logging
from garrison.settings import ConfigError, Settings, load_settings
from garrison.store import notices
from garrison.store.factory import open_pubsub

T = TypeVar("T")

EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXIT_SCHEMA = 3


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    typer.echo(f"garrison: error: {message}", err=True)
    raise typer.Exit(code)


class _CurrentStderr:
    """``sys.stderr`` as it is at each write: a command run in-process (typer's test
    runner) swaps it for a buffer it closes afterwards, and the log must not keep that."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


_STDERR = cast(TextIO, _CurrentStderr())


def settings_or_exit(*, configure_logs: bool = True) -> Settings:
    try:
        settings = load_settings()
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
    if configure_logs:
        configure_logging(settings)
    else:  # a quiet command (progress bars, --json): warnings and errors only, on stderr,
        # so standard output holds nothing but the command's own output
        log = settings.log.model_copy(update={"level": "warning"})
        configure_logging(settings.model_copy(update={"log": log}), stream=_STDERR)
    install_keyring(settings)  # the audit log's per-person keys are wrapped with it
    # A command that changes what the servers keep in memory (a role, a user's status)
    # tells them through change notices, like the API does.
    notices.configure_commands(lambda: open_pubsub(settings))  # none without Redis
    return settings


def run_db(coro: Coroutine[Any, Any, T]) -> T:
    """Run a database coroutine; an unreachable database is one clear line, exit 1."""
    try:
        return notices.run_with_notices(coro)
    except (OperationalError, InterfaceError, OSError) as exc:
        fail(f"cannot reach the database (GARRISON_DATABASE_URL): {_reason(exc)}")
    except DBAPIError as exc:
        fail(f"database error: {_reason(exc)}")


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    args: tuple[object, ...] = tuple(getattr(orig, "args", ()))
    if len(args) >= 2 and isinstance(args[0], int):
        return f"{args[1]} ({args[0]})"
    return str(orig).splitlines()[0] if str(orig) else type(orig).__name__


def load_handlers(settings: Settings) -> None:
    """Import the outbox handler modules named in the settings (exit 2 naming the one that
    cannot be imported)."""
    from garrison.outbox.registry import import_handler_modules

    try:
        import_handler_modules(settings.worker.handler_modules)
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)


def prepare_schema(settings: Settings) -> None:
    """Development migrates the database; elsewhere pending migrations stop the command
    (exit 3) with the command to run."""
    from garrison.db import migrate

    if settings.is_development:
        run_db(migrate.upgrade(settings.db_url, settings.db))
        return
    status = run_db(migrate.status(settings.db_url, settings.db))
    if status.pending:
        fail(
            f"{len(status.pending)} migration(s) pending; run `garrison migrate up` first",
            EXIT_SCHEMA,
        )
