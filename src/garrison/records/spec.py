"""Collection definitions: the schema an admin gives, validated before any DDL runs.

A collection is a name, typed fields and access rules. Each becomes a real table
(``c_<name>``) with typed columns, indexes and foreign keys; see ``records.ddl``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from garrison.records.filters import FilterError, parse
from garrison.records.kinds import KIND_OPTIONS, KINDS, MAX_FILES, FieldType, kind_of
from garrison.records.kinds import table_name as table_name  # where callers find it
from garrison.records.values import MAX_JSON_DEPTH, InvalidValue, check_json

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,47}$"
SYSTEM_FIELDS = frozenset({"id", "created_at", "updated_at", "owner", "version"})
RESERVED_NAMES = frozenset({"users", "collections", "records", "admin", "auth", "system"})
MAX_FIELDS = 100
MAX_TEXT_LENGTH = 65_535
# MariaDB refuses JSON nested 32 levels deep; a schema deeper than this is no real schema
# and would exhaust the validator's recursion.

OnDelete = Literal["cascade", "set_null", "restrict"]
Action = Literal["list", "view", "create", "update", "delete"]
ACTIONS: tuple[Action, ...] = ("list", "view", "create", "update", "delete")


class FieldSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    type: FieldType
    required: bool = False
    unique: bool = False
    indexed: bool = False
    default: Any = None
    max_length: Annotated[int | None, Field(ge=1, le=MAX_TEXT_LENGTH)] = None
    values: list[Annotated[str, Field(min_length=1, max_length=100)]] | None = None
    collection: str | None = Field(
        default=None, description="relation target: a collection name, or 'users'"
    )
    on_delete: OnDelete = "restrict"
    json_schema: dict[str, Any] | None = None
    max_size: Annotated[int | None, Field(ge=1, description="file: bytes per file")] = None
    mime_types: Annotated[
        list[Annotated[str, Field(max_length=100)]] | None,
        Field(max_length=100, description="file: allowed types, e.g. image/png or image/*"),
    ] = None
    max_files: Annotated[
        int | None, Field(ge=1, le=MAX_FILES, description="file: more than 1 holds a list")
    ] = None
    thumbs: Annotated[
        list[str] | None, Field(max_length=20, description="file: thumbnail sizes, WxH")
    ] = None

    @field_validator("name")
    @classmethod
    def _not_system(cls, value: str) -> str:
        if value in SYSTEM_FIELDS:
            raise ValueError(f"{value!r} is a system field")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> FieldSpec:
        kind = kind_of(self)
        for option in sorted(KIND_OPTIONS - kind.options):
            if getattr(self, option) is not None:
                owners = " and ".join(k.name for k in KINDS.values() if option in k.options)
                raise ValueError(f"'{option}' applies to {owners} fields only")
        kind.check_definition(self)
        if (self.unique or self.indexed) and not kind.indexable(self):
            raise ValueError(f"a {self.type} field of this size cannot be indexed")
        if self.default is not None:
            self._check_default()
        return self

    def _check_default(self) -> None:
        """A default is stored into records as it is: it must be a valid value."""
        try:
            check_json(self.default)
            kind_of(self).convert(self.default, self)
        except InvalidValue as exc:
            raise ValueError(f"'default' {exc.detail}") from None

    @property
    def text_length(self) -> int:
        """Characters stored for text-like fields (0 for the others)."""
        return kind_of(self).length(self)

    @property
    def indexable(self) -> bool:
        return kind_of(self).indexable(self)


def check_json_schema(schema: dict[str, Any]) -> None:
    from jsonschema import validators
    from jsonschema.exceptions import SchemaError

    if json_depth(schema) > MAX_JSON_DEPTH:
        raise ValueError(f"'json_schema' is nested more than {MAX_JSON_DEPTH} levels deep")
    try:
        validators.validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise ValueError(f"'json_schema' is not a valid JSON Schema: {exc.message}") from None


def json_depth(value: Any) -> int:
    """How deeply containers nest in a JSON value (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        elif not isinstance(item, list):
            deepest = max(deepest, depth)
            continue
        deepest = max(deepest, depth + 1)
        stack.extend((child, depth + 1) for child in item)
    return deepest


class Rules(BaseModel):
    """Per-action access rules in the filter language. ``None``: only callers with the
    collection's admin permission; ``""``: everyone who holds the action's permission."""

    model_config = ConfigDict(extra="forbid")

    list: str | None = None
    view: str | None = None
    create: str | None = None
    update: str | None = None
    delete: str | None = None

    @field_validator("*")
    @classmethod
    def _parses(cls, value: str | None) -> str | None:
        if value:
            try:
                parse(value)
            except FilterError as exc:
                raise ValueError(f"rule does not parse: {exc}") from None
        return value


class IndexSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fields: Annotated[list[str], Field(min_length=1, max_length=8)]
    unique: bool = False


class CollectionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    fields: Annotated[list[FieldSpec], Field(max_length=MAX_FIELDS)] = []
    indexes: list[IndexSpec] = []
    rules: Rules = Rules()

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_NAMES:
            raise ValueError(f"{value!r} is reserved")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CollectionSpec:
        names = [f.name for f in self.fields]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate field names: {', '.join(duplicates)}")
        known = set(names) | SYSTEM_FIELDS
        for index in self.indexes:
            unknown = [f for f in index.fields if f not in known]
            if unknown:
                raise ValueError(f"index on unknown fields: {', '.join(unknown)}")
        for action in ACTIONS:
            rule = getattr(self.rules, action)
            if rule:
                from garrison.records.filters import fields_of

                unknown = sorted(fields_of(parse(rule)) - known)
                if unknown:
                    raise ValueError(f"rule '{action}' uses unknown fields: {', '.join(unknown)}")
        return self

    def field(self, name: str) -> FieldSpec | None:
        return next((f for f in self.fields if f.name == name), None)


def is_valid_name(name: str) -> bool:
    return re.match(NAME_PATTERN, name) is not None
