"""The ``garrison`` command. Exit codes: 0 success, 1 runtime failure, 2 configuration or
usage error, 3 the database schema is not at the version this release expects."""

from __future__ import annotations

import typer

from garrison import __version__
from garrison.audit import install_recorder
from garrison.cli import audit as audit_cmd
from garrison.cli import backup as backup_cmd
from garrison.cli import cluster as cluster_cmd
from garrison.cli import config as config_cmd
from garrison.cli import deploy as deploy_cmd
from garrison.cli import drill as drill_cmd
from garrison.cli import drill_ha
from garrison.cli import keys as keys_cmd
from garrison.cli import migrate as migrate_cmd
from garrison.cli import monitor as monitor_cmd
from garrison.cli import privacy as privacy_cmd
from garrison.cli import quotas as quotas_cmd
from garrison.cli import reference as reference_cmd
from garrison.cli import schema as schema_cmd
from garrison.cli import secrets as secrets_cmd
from garrison.cli import serve as serve_cmd
from garrison.cli import users as users_cmd
from garrison.cli import worker as worker_cmd
from garrison.cli.common import EXIT_FAILURE
from garrison.errors import GarrisonError

app = typer.Typer(
    name="garrison",
    help="Garrison: self-hosted API backend platform.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(migrate_cmd.app, name="migrate")
app.add_typer(config_cmd.app, name="config")
app.add_typer(schema_cmd.app, name="schema")
app.add_typer(quotas_cmd.app, name="quotas")
app.add_typer(audit_cmd.app, name="audit")
app.add_typer(users_cmd.app, name="users")
app.add_typer(keys_cmd.app, name="keys")
app.add_typer(cluster_cmd.app, name="cluster")
app.add_typer(backup_cmd.app, name="backup")
app.add_typer(drill_ha.register(drill_cmd.app), name="drill")  # pitr, failover, redis
app.add_typer(privacy_cmd.app, name="privacy")
app.add_typer(reference_cmd.app, name="reference")
app.add_typer(secrets_cmd.app, name="secrets")
app.add_typer(deploy_cmd.app, name="deploy")
app.command("serve")(serve_cmd.serve)
app.command("worker")(worker_cmd.worker)
app.command("monitor")(monitor_cmd.monitor_command)


@app.command("version")
def version() -> None:
    """Print Garrison's version."""
    typer.echo(__version__)


def main() -> None:
    install_recorder()  # every event a command emits goes to the audit log
    try:
        app()
    except GarrisonError as exc:
        # An error of the error tree that no command turned into its own message (a refusal,
        # an audit key this installation cannot open): one line, as an API client would
        # get it. The tree's root is an unexpected failure and keeps its traceback.
        if type(exc) is GarrisonError:
            raise
        typer.echo(f"garrison: error: {exc.detail or exc.title}", err=True)
        raise SystemExit(EXIT_FAILURE) from None
