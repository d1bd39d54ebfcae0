"""The development reference database: a SQLite copy of an instance (the live database, or
a backup restored somewhere) in which every personal field is replaced by a stable fake
value, for development instances to load. Production instances refuse to load one.

What is copied: users (e-mail faked, every password set to ``REFERENCE_PASSWORD``), roles,
collections with their records, flags, quotas and privacy policies. What is not: audit log,
outbox, sessions, API keys, one-time tokens, signing keys, per-subject keys and privacy
jobs (a development instance makes its own). Record fields are faked per the collection's
privacy policy: ``anonymize`` fakes the fields it lists, ``delete`` (the default) fakes every
text, e-mail, URL and JSON field, ``retain`` keeps them; e-mail fields are always faked.
A fake is derived from the value (SHA-256), so equal values stay equal and ids (owners,
relations) are kept: relations stay intact.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import MetaData, Table, delete, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from garrison.db import migrate
from garrison.db.base import Base
from garrison.db.engine import Database
from garrison.errors import GarrisonError
from garrison.privacy.schemas import PolicyIn
from garrison.records import ddl
from garrison.records.kinds import EXTERNAL_TARGETS
from garrison.records.spec import CollectionSpec, table_name
from garrison.settings import Settings

REFERENCE_PASSWORD = "reference-password"  # noqa: S105 - documented, development only
MARKER = 0x47524546  # SQLite user_version of a reference database ("GREF")
COPIED = (
    "auth_users",
    "auth_roles",
    "auth_user_roles",
    "garrison_collections",
    "flags",
    "rate_limit_quotas",
    "privacy_policies",
)
FAKED_BY_DEFAULT = ("text", "email", "url", "json")


class ReferenceRefused(GarrisonError):
    """A reference database cannot be loaded here (production, or not a reference file)."""

    status, slug, title = 409, "reference-refused", "Reference Database Refused"


def _digest(*parts: object) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


def fake(kind: str, table: str, field: str, value: Any) -> Any:
    if value is None:
        return None
    h = _digest(table, field, value)
    if kind == "email":
        return f"{h[:12]}@example.invalid"
    if kind == "url":
        return f"https://example.invalid/{h[:12]}"
    if kind == "text":
        return f"{field}-{h[:10]}"
    return None  # numbers, dates, JSON: cleared


def _record_faker(
    spec: CollectionSpec, policy: PolicyIn | None
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    action = policy.erasure.action if policy else "delete"
    kinds = {f.name: f.type for f in spec.fields}
    if action == "anonymize" and policy is not None:
        faked = set(policy.erasure.fields)
    elif action == "delete":
        faked = {name for name, kind in kinds.items() if kind in FAKED_BY_DEFAULT}
    else:
        faked = set()
    faked |= {name for name, kind in kinds.items() if kind == "email"}
    table = table_name(spec.name)

    def apply(row: dict[str, Any]) -> dict[str, Any]:
        return {k: fake(kinds[k], table, k, v) if k in faked else v for k, v in row.items()}

    return apply


def _ordered(specs: list[CollectionSpec]) -> list[CollectionSpec]:
    """Collections after the ones they relate to (so foreign keys resolve on insert)."""
    done: set[str] = set()
    out: list[CollectionSpec] = []
    pending = list(specs)
    while pending:
        progressed = False
        for spec in list(pending):
            targets = {f.collection for f in spec.fields if f.type == "relation" and f.collection}
            if all(t in done or t == spec.name or t in EXTERNAL_TARGETS for t in targets):
                out.append(spec)
                done.add(spec.name)
                pending.remove(spec)
                progressed = True
        if not progressed:  # a cycle: keep the rest in any order
            out.extend(pending)
            break
    return out


def _creator(table: Table) -> Callable[[Any], None]:
    def create(conn: Any) -> None:
        table.create(conn)

    return create


async def _rows(conn: AsyncConnection, table: Table) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in await conn.execute(select(table))]


async def _insert(conn: AsyncConnection, table: Table, rows: Iterable[dict[str, Any]]) -> int:
    batch = list(rows)
    for start in range(0, len(batch), 500):
        await conn.execute(insert(table), batch[start : start + 500])
    return len(batch)


async def _copy(source: Database, target: Database, *, anonymize: bool) -> dict[str, int]:
    counts: dict[str, int] = {}
    password = PasswordHasher().hash(REFERENCE_PASSWORD) if anonymize else None
    async with source.connect() as src, target.engine.begin() as dst:
        tables = [Base.metadata.tables[name] for name in COPIED]
        old_specs = [
            CollectionSpec.model_validate(row["spec"])
            for row in await _rows(dst, Base.metadata.tables["garrison_collections"])
        ]
        for spec in reversed(_ordered(old_specs)):  # the target's own collections go
            await dst.execute(text(f"DROP TABLE IF EXISTS {table_name(spec.name)}"))
        for table in reversed(tables):
            await dst.execute(delete(table))
        policies = {
            row["collection"]: PolicyIn.model_validate(
                {"erasure": row["erasure"], "retention": row["retention"]}
            )
            for row in await _rows(src, Base.metadata.tables["privacy_policies"])
        }
        for table in tables:
            rows = await _rows(src, table)
            if anonymize and table.name == "auth_users":
                rows = [
                    {
                        **row,
                        "email": f"user-{_digest('user', row['id'])[:12]}@example.invalid",
                        "password_hash": password,
                    }
                    for row in rows
                ]
            counts[table.name] = await _insert(dst, table, rows)
        specs = [
            CollectionSpec.model_validate(row["spec"])
            for row in await _rows(src, Base.metadata.tables["garrison_collections"])
        ]
        for spec in _ordered(specs):
            source_table = ddl.build_table(spec, MetaData())
            target_table = ddl.build_table(spec, MetaData())
            await dst.run_sync(_creator(target_table))
            rows = await _rows(src, source_table)
            if anonymize:
                faker = _record_faker(spec, policies.get(spec.name))
                rows = [faker(row) for row in rows]
            counts[target_table.name] = await _insert(dst, target_table, rows)
        if target.is_sqlite and anonymize:
            await dst.execute(text(f"PRAGMA user_version = {MARKER}"))
    return counts


def check_out(out: Path) -> Path:
    if out.exists():
        raise ReferenceRefused(f"{out} exists; choose a new file")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out.resolve()


def check_in(path: Path) -> Path:
    if not path.is_file():
        raise ReferenceRefused(f"{path} is not a file")
    return path.resolve()


async def create(settings: Settings, *, out: Path, source_url: str | None = None) -> dict[str, int]:
    """Write the reference database to ``out`` (an absolute path to a new SQLite file;
    ``check_out`` checks it) from ``source_url`` (default: this instance's database)."""
    url = f"sqlite+aiosqlite:///{out}"
    await migrate.upgrade(url, settings.db)
    source = Database(source_url or settings.db_url, settings.db)
    target = Database(url, settings.db)
    try:
        return await _copy(source, target, anonymize=True)
    finally:
        await source.dispose()
        await target.dispose()


async def load(settings: Settings, *, path: Path) -> dict[str, int]:
    """Replace this development instance's data with the reference database at ``path``
    (an absolute path to an existing file)."""
    if settings.env == "production":
        raise ReferenceRefused("a production instance never loads the reference database")
    source = Database(f"sqlite+aiosqlite:///{path}", settings.db)
    target = Database(settings.db_url, settings.db)
    try:
        async with source.connect() as conn:
            marker = (await conn.execute(text("PRAGMA user_version"))).scalar()
        if marker != MARKER:
            raise ReferenceRefused(
                f"{path} is not a reference database (garrison reference create)"
            )
        await migrate.upgrade(settings.db_url, settings.db)
        return await _copy(source, target, anonymize=False)
    finally:
        await source.dispose()
        await target.dispose()
