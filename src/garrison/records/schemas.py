"""Request and response bodies of the records API."""

from __future__ import annotations

from typing import Any, Literal

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


class SchemaChangeIn(BaseModel):
    """One change: ``add_field`` (field), ``drop_field`` (name), ``rename_field`` (old, new),
    ``add_index`` / ``drop_index`` (index), ``set_rules`` (rules)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["add_field", "drop_field", "rename_field", "add_index", "drop_index", "set_rules"]
    field: FieldSpec | None = None
    name: str | None = Field(default=None, description="the field to drop")
    old: str | None = None
    new: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{0,47}$")
    index: IndexSpec | None = None
    rules: Rules | None = None


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
