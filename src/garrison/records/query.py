"""Reading records: access rules inside the SQL, filters, sorting and keyset cursors.

Rules and filters are compiled into the WHERE clause, so a list never returns, and a count
never counts, a row the caller may not see. Cursors are keyset positions (the last row's
sort values and id), so a page costs the same however deep it is.
"""

from __future__ import annotations

import base64
import binascii
import functools
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Select, and_, bindparam, false, func, or_, select

from garrison.db.fastread import FastReader, rows_of
from garrison.events import Actor
from garrison.records.errors import InvalidFilter, RuleDenied
from garrison.records.filters import FilterError, Node, parse
from garrison.records.ids import is_uuid
from garrison.records.params import DEFAULT_LIMIT, MAX_LIMIT
from garrison.records.registry import Collection, Executor
from garrison.records.spec import Action, FieldSpec
from garrison.records.sql import AuthValues, ColumnRef, Kind, Resolver, coerce, compile_expression
from garrison.records.validation import output, select_fields

MAX_SORT_FIELDS = 4
_KINDS: dict[str, Kind] = {
    "text": "text",
    "email": "text",
    "url": "text",
    "select": "text",
    "relation": "id",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
    "date": "date",
    "datetime": "datetime",
    "json": "json",
}
_SYSTEM_KINDS: dict[str, Kind] = {
    "id": "id",
    "owner": "id",
    "created_at": "datetime",
    "updated_at": "datetime",
    "version": "integer",
}


@dataclass(frozen=True)
class Caller:
    """Who is asking: the values rules see, and whether rules apply at all (``admin``)."""

    actor: Actor
    id: str | None = None
    role: str | None = None
    admin: bool = False

    @property
    def auth(self) -> AuthValues:
        return AuthValues(id=self.id, role=self.role)


@dataclass(frozen=True)
class Page:
    """A page of records. Values are as stored (datetimes, dates): ``validation.encode``
    writes them as the API shows them, with no per-value Python on the way."""

    items: list[dict[str, Any]]
    next_cursor: str | None
    total: int | None = None


def field_kind(field: FieldSpec) -> Kind:
    return _KINDS[field.type]


def resolver(collection: Collection) -> Resolver:
    kinds = dict(_SYSTEM_KINDS) | {f.name: field_kind(f) for f in collection.spec.fields}

    def resolve(name: str) -> ColumnRef | None:
        kind = kinds.get(name)
        return None if kind is None else ColumnRef(collection.table.c[name], kind)

    return resolve


@functools.lru_cache(maxsize=1024)
def parsed(text: str) -> Node:
    """Parsed rules and filters, shared: the trees are immutable."""
    return parse(text)


def check_action(collection: Collection, action: Action, caller: Caller) -> None:
    """RuleDenied when the action is closed to everyone but administrators."""
    if not caller.admin and getattr(collection.spec.rules, action) is None:
        raise RuleDenied(f"only administrators may {action} records of {collection.name!r}")


def rule_clause(
    collection: Collection, action: Action, caller: Caller
) -> ColumnElement[bool] | None:
    """The SQL condition the action's rule adds (None: no restriction)."""
    check_action(collection, action, caller)
    if caller.admin:
        return None
    rule: str | None = getattr(collection.spec.rules, action)
    if not rule:  # "": open to everyone (None, closed, was refused above)
        return None
    return compile_expression(parsed(rule), resolve=resolver(collection), auth=caller.auth)


def read_shape(collection: Collection, action: Action, caller: Caller, *texts: str | None) -> Any:
    """What determines a read statement besides its values (see ``FastReader.all_by_shape``):
    the collection's definition, the rule and who it is evaluated for, and the request's
    texts. None when something in it is ``@now``, whose value moves on every call."""
    rule = None if caller.admin else getattr(collection.spec.rules, action)
    if any(text and "@now" in text for text in (rule, *texts)):
        return None
    auth = (True,) if caller.admin else (caller.id, caller.role)
    # The Table itself, not only the definition's stamp: holding it keeps the entry tied to
    # exactly the columns the statement was compiled against.
    return (collection.stamp, collection.table, action, *auth, *texts)


def filter_clause(collection: Collection, text: str) -> ColumnElement[bool]:
    try:
        return compile_expression(parsed(text), resolve=resolver(collection))
    except FilterError as exc:
        raise InvalidFilter(
            exc.message, position=exc.position, errors=[{"parameter": "filter", "detail": str(exc)}]
        ) from None


@dataclass(frozen=True)
class SortKey:
    name: str
    descending: bool
    kind: Kind


def parse_sort(collection: Collection, text: str | None) -> list[SortKey]:
    kinds = dict(_SYSTEM_KINDS) | {f.name: field_kind(f) for f in collection.spec.fields}
    keys: list[SortKey] = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        descending = part.startswith("-")
        name = part.lstrip("+-")
        kind = kinds.get(name)
        if kind is None or kind == "json":
            raise InvalidFilter(
                f"cannot sort by {name!r}",
                errors=[{"parameter": "sort", "detail": f"unknown or unsortable field {name!r}"}],
            )
        keys.append(SortKey(name, descending, kind))
    if len(keys) > MAX_SORT_FIELDS:
        raise InvalidFilter(
            f"sort by at most {MAX_SORT_FIELDS} fields",
            errors=[{"parameter": "sort", "detail": "too many sort fields"}],
        )
    if not keys or keys[-1].name != "id":
        keys = [k for k in keys if k.name != "id"] + [SortKey("id", False, "id")]
    return keys


def _encode_cursor(keys: list[SortKey], row: dict[str, Any]) -> str:
    values = [output({k.name: row[k.name]})[k.name] for k in keys]
    raw = orjson.dumps({"s": [(k.name, k.descending) for k in keys], "v": values})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(keys: list[SortKey], cursor: str) -> list[Any]:
    bad = InvalidFilter(
        "the cursor is not valid for this query",
        errors=[{"parameter": "cursor", "detail": "malformed, or made for another sort"}],
    )
    try:
        data = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise bad from None
    if not isinstance(data, dict) or data.get("s") != [[k.name, k.descending] for k in keys]:
        raise bad
    values = data.get("v")
    if not isinstance(values, list) or len(values) != len(keys):
        raise bad
    try:
        return [None if v is None else coerce(v, k.kind) for k, v in zip(keys, values, strict=True)]
    except ValueError:
        raise bad from None


def _after(collection: Collection, keys: list[SortKey], values: list[Any]) -> ColumnElement[bool]:
    """Rows strictly after the cursor in (key1, key2, …, id) order. Both backends sort NULL
    first ascending and last descending; the conditions follow that."""
    clauses = []
    for index, key in enumerate(keys):
        column = collection.table.c[key.name]
        equal_before = [
            collection.table.c[k.name].is_(None) if v is None else collection.table.c[k.name] == v
            for k, v in zip(keys[:index], values[:index], strict=True)
        ]
        value = values[index]
        beyond: ColumnElement[bool]
        if key.descending:
            # NULLs come last descending: nothing sorts after a NULL but its ties.
            beyond = false() if value is None else or_(column < value, column.is_(None))
        else:
            beyond = column.is_not(None) if value is None else column > value
        clauses.append(and_(*equal_before, beyond))
    return or_(*clauses)


async def get_record(
    session: Executor, *, collection: Collection, record_id: str, caller: Caller
) -> dict[str, Any] | None:
    if not is_uuid(record_id):
        return None  # no such id can exist: no statement (a non-ASCII one would not compare)
    table = collection.table

    def build(value: Any) -> Select[Any]:
        query = select(table).where(table.c.id == value)
        clause = rule_clause(collection, "view", caller)
        return query if clause is None else query.where(clause)

    shape = read_shape(collection, "view", caller)
    if isinstance(session, FastReader) and shape is not None:
        check_action(collection, "view", caller)
        rows = await session.all_by_shape(
            ("get", shape), lambda: build(bindparam("record_id")), {"record_id": record_id}
        )
    else:
        rows = await rows_of(session, build(record_id))
    return rows[0] if rows else None


async def list_records(
    session: Executor,
    *,
    collection: Collection,
    caller: Caller,
    filter: str | None = None,
    sort: str | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
    fields: list[str] | None = None,
    count: bool = False,
) -> Page:
    table = collection.table
    check_action(collection, "list", caller)
    if fields is not None:
        unknown = [name for name in fields if name not in table.c]
        if unknown:
            raise InvalidFilter(
                "unknown fields requested",
                errors=[{"parameter": "fields", "detail": f"unknown: {', '.join(unknown)}"}],
            )
    keys = parse_sort(collection, sort)
    limit = max(1, min(limit, MAX_LIMIT))
    after = _decode_cursor(keys, cursor) if cursor else None

    def conditions() -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        clause = rule_clause(collection, "list", caller)
        if clause is not None:
            found.append(clause)
        if filter:
            found.append(filter_clause(collection, filter))
        return found

    def page() -> Select[Any]:
        query: Select[Any] = select(table).where(*conditions())
        if after is not None:
            query = query.where(_after(collection, keys, after))
        order = [table.c[k.name].desc() if k.descending else table.c[k.name].asc() for k in keys]
        return query.order_by(*order).limit(limit + 1)

    def counted() -> Select[Any]:
        return select(func.count().label("total")).select_from(table).where(*conditions())

    # A first page of a known shape reuses its compiled statement whole (cursors carry
    # values, so later pages go through the statement cache instead).
    shape = read_shape(collection, "list", caller, filter, sort) if after is None else None
    if isinstance(session, FastReader) and shape is not None:
        rows = await session.all_by_shape(("list", shape, limit), page)
        totals = await session.all_by_shape(("count", shape), counted) if count else None
    else:
        rows = await rows_of(session, page())
        totals = await rows_of(session, counted()) if count else None
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(
        items=rows if fields is None else [select_fields(row, fields) for row in rows],
        next_cursor=_encode_cursor(keys, rows[-1]) if more and rows else None,
        total=int(totals[0]["total"]) if totals is not None else None,
    )
