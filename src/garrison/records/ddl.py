"""A collection's table, and the schema changes applied to it, on SQLite and MySQL/MariaDB.

``build_table`` turns a ``CollectionSpec`` into a SQLAlchemy ``Table`` (used for DDL and for
every query on the collection). Schema changes go through Alembic's operations on the live
connection: directly on MySQL/MariaDB, in batch mode (table rebuild when needed) on SQLite.
Every change is a ``SchemaChange`` with an ``inverse()``, so it can be recorded and undone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    Column,
    Connection,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
)
from sqlalchemy.types import TypeEngine

from garrison.db.types import UtcDateTime
from garrison.records.kinds import kind_of
from garrison.records.spec import CollectionSpec, FieldSpec, IndexSpec, Rules, table_name
from garrison.records.types import AsciiId

MAX_IDENTIFIER = 64
ON_DELETE = {"cascade": "CASCADE", "set_null": "SET NULL", "restrict": "RESTRICT"}


def identifier(prefix: str, table: str, columns: list[str]) -> str:
    name = f"{prefix}_{table}_{'_'.join(columns)}"
    if len(name) <= MAX_IDENTIFIER:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    return f"{prefix}_{table[:40]}_{digest}"


def column_type(field: FieldSpec) -> TypeEngine[Any]:
    return kind_of(field).column_type(field)


def field_column(field: FieldSpec, table: str) -> Column[Any]:
    args: list[Any] = []
    references = kind_of(field).references(field)
    if references is not None:
        target, column = references
        args.append(
            ForeignKey(
                f"{target}.{column}",
                ondelete=ON_DELETE[field.on_delete],
                name=identifier("fk", table, [field.name]),
            )
        )
    # Nullable in the database: "required" is enforced when records are validated, so a
    # required field can be added to a table that already has rows (they get the default).
    return Column(field.name, column_type(field), *args, nullable=True)


def field_index(field: FieldSpec, table: str) -> Index | None:
    if field.unique:
        return Index(identifier("uq", table, [field.name]), field.name, unique=True)
    if field.indexed or kind_of(field).references(field) is not None:
        return Index(identifier("ix", table, [field.name]), field.name)
    return None


def composite_index(index: IndexSpec, table: str) -> Index:
    prefix = "uq" if index.unique else "ix"
    return Index(identifier(prefix, table, index.fields), *index.fields, unique=index.unique)


def build_table(spec: CollectionSpec, metadata: MetaData | None = None) -> Table:
    metadata = metadata or MetaData()
    name = table_name(spec.name)
    for field in spec.fields:
        references = kind_of(field).references(field)
        if references is not None:
            target, column = references
            # A stub so the foreign key can resolve (not for a relation to this very table).
            if target != name and target not in metadata.tables:
                Table(target, metadata, Column(column, column_type(field), primary_key=True))
    columns: list[Any] = [
        Column("id", AsciiId(), primary_key=True),
        Column("created_at", UtcDateTime(), nullable=False),
        Column("updated_at", UtcDateTime(), nullable=False),
        Column("owner", AsciiId(), nullable=True, index=False),
        Column("version", Integer(), nullable=False, default=1),
    ]
    columns += [field_column(field, name) for field in spec.fields]
    table = Table(name, metadata, *columns)
    Index(identifier("ix", name, ["owner"]), table.c.owner)
    Index(identifier("ix", name, ["created_at"]), table.c.created_at)
    for field in spec.fields:
        index = field_index(field, name)
        if index is not None:
            table.append_constraint(index)
    for extra in spec.indexes:
        table.append_constraint(composite_index(extra, name))
    return table


def create_table(conn: Connection, spec: CollectionSpec) -> None:
    build_table(spec).create(conn)


def drop_table(conn: Connection, spec: CollectionSpec) -> None:
    build_table(spec).drop(conn)


# --- schema changes ----------------------------------------------------------------------

ChangeKind = Literal[
    "add_field", "drop_field", "rename_field", "add_index", "drop_index", "set_rules"
]
DESTRUCTIVE: frozenset[str] = frozenset({"drop_field"})


@dataclass(frozen=True)
class SchemaChange:
    """One reversible change. ``field`` is the full field (for add/drop), ``old``/``new`` the
    names (for rename), ``index`` the index (for add/drop index), ``rules``/``old_rules`` the
    access rules after/before (for set_rules, which needs no DDL)."""

    kind: ChangeKind
    field: FieldSpec | None = None
    old: str | None = None
    new: str | None = None
    index: IndexSpec | None = None
    rules: Rules | None = None
    old_rules: Rules | None = None

    @property
    def destructive(self) -> bool:
        return self.kind in DESTRUCTIVE

    def inverse(self) -> SchemaChange:
        match self.kind:
            case "add_field":
                return SchemaChange("drop_field", field=self.field)
            case "drop_field":
                return SchemaChange("add_field", field=self.field)
            case "rename_field":
                return SchemaChange("rename_field", old=self.new, new=self.old)
            case "add_index":
                return SchemaChange("drop_index", index=self.index)
            case "drop_index":
                return SchemaChange("add_index", index=self.index)
            case "set_rules":
                return SchemaChange("set_rules", rules=self.old_rules, old_rules=self.rules)
        raise AssertionError(self.kind)  # pragma: no cover

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind}
        if self.field is not None:
            data["field"] = self.field.model_dump(exclude_defaults=True)
        if self.old is not None:
            data["old"], data["new"] = self.old, self.new
        if self.index is not None:
            data["index"] = self.index.model_dump(exclude_defaults=True)
        if self.kind == "set_rules":
            data["rules"] = (self.rules or Rules()).model_dump()
            data["old_rules"] = (self.old_rules or Rules()).model_dump()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SchemaChange:
        return cls(
            kind=data["kind"],
            field=FieldSpec.model_validate(data["field"]) if "field" in data else None,
            old=data.get("old"),
            new=data.get("new"),
            index=IndexSpec.model_validate(data["index"]) if "index" in data else None,
            rules=Rules.model_validate(data["rules"]) if "rules" in data else None,
            old_rules=Rules.model_validate(data["old_rules"]) if "old_rules" in data else None,
        )

    def apply_to_spec(self, spec: CollectionSpec) -> CollectionSpec:
        """The collection's definition after this change (validated like a new one)."""
        data = spec.model_dump()
        fields: list[dict[str, Any]] = data["fields"]
        match self.kind:
            case "add_field":
                assert self.field is not None
                fields.append(self.field.model_dump())
            case "drop_field":
                assert self.field is not None
                data["fields"] = [f for f in fields if f["name"] != self.field.name]
            case "rename_field":
                for f in fields:
                    if f["name"] == self.old:
                        f["name"] = self.new
                for index in data["indexes"]:
                    index["fields"] = [self.new if n == self.old else n for n in index["fields"]]
            case "add_index":
                assert self.index is not None
                data["indexes"].append(self.index.model_dump())
            case "drop_index":
                assert self.index is not None
                data["indexes"] = [i for i in data["indexes"] if i != self.index.model_dump()]
            case "set_rules":
                data["rules"] = (self.rules or Rules()).model_dump()
        return CollectionSpec.model_validate(data)


def _operations(conn: Connection) -> Operations:
    return Operations(MigrationContext.configure(conn))


def apply_change(conn: Connection, before: CollectionSpec, change: SchemaChange) -> None:
    """Run the DDL that turns the table for ``before`` into the table for the changed spec.

    Columns change as the change says; indexes and foreign keys are reconciled by name
    between the two table shapes (their names derive from their columns, so a rename moves
    them too). Stale ones go first: neither backend drops a column an index or key uses.
    """
    after = change.apply_to_spec(before)
    old, new = build_table(before), build_table(after)
    old_ix = {str(i.name): i for i in old.indexes}
    new_ix = {str(i.name): i for i in new.indexes}
    old_fk = {str(fk.name): fk for fk in old.foreign_key_constraints}
    new_fk = {str(fk.name): fk for fk in new.foreign_key_constraints}
    ops = _operations(conn)
    table = old.name
    sqlite = conn.dialect.name == "sqlite"

    if not sqlite:  # SQLite keeps foreign keys in the table definition (batch mode below)
        for name in old_fk.keys() - new_fk.keys():
            ops.drop_constraint(name, table, type_="foreignkey")
    for name in old_ix.keys() - new_ix.keys():
        ops.drop_index(name, table_name=table)

    if change.kind == "add_field":
        assert change.field is not None
        if sqlite:
            with ops.batch_alter_table(table, recreate="auto") as batch:
                batch.add_column(field_column(change.field, table))
        else:
            ops.add_column(table, Column(change.field.name, column_type(change.field)))
    elif change.kind == "drop_field":
        assert change.field is not None
        if sqlite:
            with ops.batch_alter_table(table, recreate="always") as batch:
                batch.drop_column(change.field.name)
        else:
            ops.drop_column(table, change.field.name)
    elif change.kind == "rename_field":
        assert change.old is not None
        assert change.new is not None
        field = before.field(change.old)
        assert field is not None
        if sqlite:
            with ops.batch_alter_table(table) as batch:
                batch.alter_column(change.old, new_column_name=change.new)
        else:
            ops.alter_column(
                table,
                change.old,
                new_column_name=change.new,
                existing_type=column_type(field),
                existing_nullable=True,
            )

    for name in new_ix.keys() - old_ix.keys():
        index = new_ix[name]
        columns = [c.name for c in index.columns]
        ops.create_index(name, table, columns, unique=bool(index.unique))
    if not sqlite:
        for name in new_fk.keys() - old_fk.keys():
            fk = new_fk[name]
            element = fk.elements[0]
            ops.create_foreign_key(
                name,
                table,
                element.column.table.name,
                [element.parent.name],
                [element.column.name],
                ondelete=fk.ondelete,
            )
