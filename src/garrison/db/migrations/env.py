"""Alembic environment: runs on the connection that ``garrison.db.migrate`` hands over."""

from __future__ import annotations

from alembic import context

import garrison.models  # noqa: F401  (registers every domain's tables on the metadata)
from garrison.db.base import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reachable by running `alembic` by hand
    raise RuntimeError("run migrations through `garrison migrate`, not the alembic command")

context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=context.config.get_main_option("version_table") or "alembic_version",
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
