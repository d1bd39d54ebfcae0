"""Request and response bodies of the records API."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from garrison.records.spec import CollectionSpec, FieldSpec, IndexSpec, Rules


class CollectionOut(BaseModel):
    name: str
    version: int
    fields: list[FieldSpec]
    indexes: list[IndexSpec]
    rules: Rules


class CollectionList(BaseModel):
    items: list[CollectionOut]


class _Change(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AddField(_Change):
    """Add a field (its column, and for a relation its foreign key)."""

    kind: Literal["add_field"]
    field: FieldSpec


class DropField(_Change):
    """Drop a field and its data (``?confirm=true``)."""

    kind: Literal["drop_field"]
    name: str = Field(description="the field to drop")


class RenameField(_Change):
    kind: Literal["rename_field"]
    old: str = Field(description="the field's current name")
    new: str = Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")


class AddIndex(_Change):
    kind: Literal["add_index"]
    index: IndexSpec


class DropIndex(_Change):
    kind: Literal["drop_index"]
    index: IndexSpec


class SetRules(_Change):
    """Replace the access rules (no DDL)."""

    kind: Literal["set_rules"]
    rules: Rules


# One change, told apart by ``kind``: each kind names the fields it needs, so a missing one
# is a 422 naming it, in the request's validation like any other field.
SchemaChangeIn = Annotated[
    AddField | DropField | RenameField | AddIndex | DropIndex | SetRules,
    Field(discriminator="kind"),
]


class SchemaChangeOut(BaseModel):
    id: str
    version: int
    change: dict[str, Any]
    inverse: dict[str, Any]
    actor: str | None
    applied_at: str


class RecordPage(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None = None
    total: int | None = None


def collection_out(spec: CollectionSpec, version: int) -> CollectionOut:
    return CollectionOut(
        name=spec.name, version=version, fields=spec.fields, indexes=spec.indexes, rules=spec.rules
    )
