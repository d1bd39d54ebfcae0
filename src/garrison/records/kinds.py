"""The kinds of record field, one object each: what a field of that kind stores, how its
input is checked, which filter operators its values take, how much text it holds, whether
it can be indexed, and which options its definition may carry.

Every other part of ``records`` asks the kind (``kind_of(field)``) instead of matching on
``field.type``: the definition check (``spec``), the column (``ddl``), input validation
(``validation``) and filters (``query``/``sql``). A new kind is one class here and one
entry in ``FieldType``.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any, ClassVar, Literal, get_args
from urllib.parse import urlsplit

from sqlalchemy import JSON, BigInteger, Boolean, Date, Double, String
from sqlalchemy.types import TypeEngine

from garrison.db.types import AsciiId, UtcDateTime
from garrison.records.ids import is_uuid
from garrison.records.types import ExactText
from garrison.records.values import (
    INT64,
    InvalidValue,
    check_json,
    escape_pointer,
    is_utf8,
    parse_date,
    parse_datetime,
)

if TYPE_CHECKING:
    from garrison.records.spec import FieldSpec

FieldType = Literal[
    "text",
    "integer",
    "number",
    "boolean",
    "date",
    "datetime",
    "email",
    "url",
    "json",
    "select",
    "relation",
    "file",
]
# The kinds of value the filter language compares (``records.sql``): "id" is text stored
# as ASCII (record ids, owners, relations).
FilterKind = Literal["text", "id", "integer", "number", "boolean", "date", "datetime", "json"]
MAX_TEXT_INDEXABLE = 768  # characters: 4 bytes x 768 = InnoDB's 3072-byte key limit
# Relation targets that are not collections: name → (table, id column). The column type
# of such a relation matches the target's id exactly (MySQL refuses a foreign key across
# character sets).
EXTERNAL_TARGETS: dict[str, tuple[str, str]] = {"users": ("auth_users", "id")}


def table_name(collection: str) -> str:
    """The table holding a collection's records."""
    return f"c_{collection}"


_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


class FieldKind:
    """The behaviour shared by every kind; each kind overrides what differs."""

    name: ClassVar[FieldType]
    filter_kind: ClassVar[FilterKind]
    default_length: ClassVar[int] = 0  # characters held by a text-like kind
    blank_is_missing: ClassVar[bool] = False  # "" counts as no value
    options: ClassVar[frozenset[str]] = frozenset()  # kind-specific options allowed

    def length(self, field: FieldSpec) -> int:
        return self.default_length

    def indexable(self, field: FieldSpec) -> bool:
        return True

    def check_definition(self, field: FieldSpec) -> None:
        """``ValueError`` when the field's options do not fit this kind."""

    def column_type(self, field: FieldSpec) -> TypeEngine[Any]:
        raise NotImplementedError

    def references(self, field: FieldSpec) -> tuple[str, str] | None:
        """(table, column) the field's foreign key points at; None for no foreign key. A
        referencing column is always indexed (MySQL needs one for the key)."""
        return None

    def convert(self, value: Any, field: FieldSpec) -> Any:
        """The stored value for ``value``, or ``InvalidValue`` saying what is wrong."""
        raise NotImplementedError


def text_value(value: Any, limit: int) -> str:
    if not isinstance(value, str):
        raise InvalidValue("must be a string")
    if len(value) > limit:
        raise InvalidValue(f"must be at most {limit} characters")
    if "\x00" in value:
        raise InvalidValue("must not contain NUL characters")
    if not is_utf8(value):
        raise InvalidValue("must be valid UTF-8 (no lone surrogates)")
    return value


class TextKind(FieldKind):
    name: ClassVar[FieldType] = "text"
    filter_kind, default_length = "text", 255
    blank_is_missing = True
    options = frozenset({"max_length"})

    def length(self, field: FieldSpec) -> int:
        return field.max_length or self.default_length

    def indexable(self, field: FieldSpec) -> bool:
        return self.length(field) <= MAX_TEXT_INDEXABLE

    def column_type(self, field: FieldSpec) -> TypeEngine[Any]:
        return ExactText(self.length(field))

    def convert(self, value: Any, field: FieldSpec) -> str:
        return text_value(value, self.length(field))


class EmailKind(TextKind):
    name: ClassVar[FieldType] = "email"
    default_length = 254
    options = frozenset()

    def length(self, field: FieldSpec) -> int:
        return self.default_length

    def convert(self, value: Any, field: FieldSpec) -> str:
        text = text_value(value, self.default_length)
        if not _EMAIL.match(text):
            raise InvalidValue("must be an e-mail address")
        local, domain = text.rsplit("@", 1)
        return f"{local}@{domain.lower()}"


class UrlKind(TextKind):
    name: ClassVar[FieldType] = "url"
    default_length = 2048
    options = frozenset()

    def length(self, field: FieldSpec) -> int:
        return self.default_length

    def convert(self, value: Any, field: FieldSpec) -> str:
        text = text_value(value, self.default_length)
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidValue("must be an http(s) URL")
        return text


class SelectKind(FieldKind):
    name, filter_kind, default_length = "select", "text", 100
    options = frozenset({"values"})

    def check_definition(self, field: FieldSpec) -> None:
        if not field.values:
            raise ValueError("a select field needs 'values'")
        if len(set(field.values)) != len(field.values):
            raise ValueError("'values' has duplicates")

    def column_type(self, field: FieldSpec) -> TypeEngine[Any]:
        return ExactText(self.default_length)

    def convert(self, value: Any, field: FieldSpec) -> Any:
        if value not in (field.values or []):
            raise InvalidValue(f"must be one of: {', '.join(field.values or [])}")
        return value


class RelationKind(FieldKind):
    name, filter_kind, default_length = "relation", "id", 36
    options = frozenset({"collection"})

    def check_definition(self, field: FieldSpec) -> None:
        if not field.collection:
            raise ValueError("a relation field needs 'collection'")
        if field.on_delete == "set_null" and field.required:
            raise ValueError("a required relation cannot use on_delete 'set_null'")

    def column_type(self, field: FieldSpec) -> TypeEngine[Any]:
        return String(36) if field.collection in EXTERNAL_TARGETS else AsciiId()

    def references(self, field: FieldSpec) -> tuple[str, str]:
        assert field.collection is not None
        return EXTERNAL_TARGETS.get(field.collection, (table_name(field.collection), "id"))

    def convert(self, value: Any, field: FieldSpec) -> str:
        if not isinstance(value, str) or not is_uuid(value):
            raise InvalidValue("must be a record id")
        return value


class IntegerKind(FieldKind):
    name, filter_kind = "integer", "integer"

    def column_type(self, field: FieldSpec) -> TypeEngine[Any]:
        return BigInteger()

    def convert(self, value: Any, field: FieldSpec) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidValue("must be an integer")
        if not INT64[0] <= value <= INT64[1]:
            raise InvalidValue("is out of the 64-bit integer range")
        return value


class NumberKind(FieldKind):
    name, filter_kind = "number", "number"

    def column_type(self, field: FieldSpec) -> TypeEngine[Any]:
        return Double()

    def convert(self, value: Any, field: FieldSpec) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidValue("must be a number")
        if not math.isfinite(value):
            raise InvalidValue("must be finite")
        return float(value)


class BooleanKind(FieldKind):
    name, filter_kind = "boolean", "boolean"

    def column_type(self, field: FieldSpec) -> TypeEngine[Any]:
        return Boolean(create_constraint=False)

    def convert(self, value: Any, field: FieldSpec) -> bool:
        if not isinstance(value, bool):
            raise InvalidValue("must be true or false")
        return value


class DateKind(FieldKind):
    name, filter_kind = "date", "date"

    def column_type(self, field: FieldSpec) -> TypeEngine[Any]:
        return Date()

    def convert(self, value: Any, field: FieldSpec) -> Any:
        day = parse_date(value)
        if day is None:
            raise InvalidValue("must be a date, e.g. 2026-01-31")
        return day


class DateTimeKind(FieldKind):
    name, filter_kind = "datetime", "datetime"

    def column_type(self, field: FieldSpec) -> TypeEngine[Any]:
        return UtcDateTime()

    def convert(self, value: Any, field: FieldSpec) -> Any:
        moment = parse_datetime(value)
        if moment is None:
            raise InvalidValue("must be an ISO 8601 date-time, e.g. 2026-01-31T12:00:00Z")
        return moment


class JsonKind(FieldKind):
    name, filter_kind = "json", "json"
    options = frozenset({"json_schema"})

    def indexable(self, field: FieldSpec) -> bool:
        return False

    def check_definition(self, field: FieldSpec) -> None:
        if field.json_schema is not None:
            from garrison.records.spec import check_json_schema

            check_json_schema(field.json_schema)

    def column_type(self, field: FieldSpec) -> TypeEngine[Any]:
        return JSON()

    def convert(self, value: Any, field: FieldSpec) -> Any:
        check_json(value)
        if field.json_schema is not None:
            from jsonschema import validators

            validator = validators.validator_for(field.json_schema)(field.json_schema)
            error = next(iter(validator.iter_errors(value)), None)
            if error is not None:
                suffix = "".join(f"/{escape_pointer(str(p))}" for p in error.absolute_path)
                raise InvalidValue(error.message, suffix)
        return value


THUMB_PATTERN = re.compile(r"^([1-9][0-9]{0,3})x([1-9][0-9]{0,3})$")  # WxH, each 1..9999
MAX_FILES = 100


class FileKind(FieldKind):
    """Files stored by ``garrison.files``: the column holds the file id (``max_files`` 1)
    or a list of ids; the bytes and their metadata live in the files domain, which checks
    on every write that each id is an upload of the caller's (``records.attachments``)."""

    name, filter_kind = "file", "json"
    options = frozenset({"max_size", "mime_types", "max_files", "thumbs"})

    def indexable(self, field: FieldSpec) -> bool:
        return False

    def check_definition(self, field: FieldSpec) -> None:
        if field.default is not None:
            raise ValueError("a file field cannot have a default")
        for size in field.thumbs or []:
            if not THUMB_PATTERN.match(size):
                raise ValueError(f"thumb size {size!r} must be WxH, e.g. 100x100")
        for mime in field.mime_types or []:
            if not re.match(r"^[a-z0-9.+-]+/([a-z0-9.+-]+|\*)$", mime):
                raise ValueError(f"mime type {mime!r} must look like image/png or image/*")

    def column_type(self, field: FieldSpec) -> TypeEngine[Any]:
        return JSON()

    def convert(self, value: Any, field: FieldSpec) -> Any:
        limit = field.max_files or 1
        ids = value if isinstance(value, list) and limit > 1 else [value]
        if not all(isinstance(item, str) and is_uuid(item) for item in ids):
            shape = "a list of file ids" if limit > 1 else "a file id"
            raise InvalidValue(f"must be {shape} (upload with multipart/form-data)")
        if len(ids) > limit:
            raise InvalidValue(f"must hold at most {limit} files")
        if len(set(ids)) != len(ids):
            raise InvalidValue("must not list a file twice")
        return ids if limit > 1 else ids[0]


def file_ids(value: Any) -> list[str]:
    """The file ids a stored file-field value holds (none, one, or a list)."""
    if value is None:
        return []
    return [str(item) for item in value] if isinstance(value, list) else [str(value)]


KINDS: dict[str, FieldKind] = {
    kind.name: kind
    for kind in (
        TextKind(),
        IntegerKind(),
        NumberKind(),
        BooleanKind(),
        DateKind(),
        DateTimeKind(),
        EmailKind(),
        UrlKind(),
        JsonKind(),
        SelectKind(),
        RelationKind(),
        FileKind(),
    )
}
assert set(KINDS) == set(get_args(FieldType)), "every FieldType needs a kind"
# Options of a field definition that belong to one kind or another (``FieldSpec``).
KIND_OPTIONS: frozenset[str] = frozenset().union(*(kind.options for kind in KINDS.values()))


def kind_of(field: FieldSpec) -> FieldKind:
    return KINDS[field.type]
