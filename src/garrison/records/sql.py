"""Compile a parsed filter or rule into a parameterised SQLAlchemy expression.

Field names resolve only through the collection's schema (a ``resolve`` callable); values
become bound parameters, coerced to the field's type first, so ``age > 'x'`` is a clear error
rather than a database-specific surprise. Macros (``@auth.id``, ``@auth.role``, ``@now``)
are values too: bound parameters, or folded to true/false when nothing in the comparison is
a column. An anonymous caller's ``@auth.id`` is null, and every comparison with it is false,
so a rule like ``owner = @auth.id`` never matches for anonymous callers.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from typing import Literal as TypingLiteral

from sqlalchemy import and_, false, func, literal, not_, or_, true
from sqlalchemy.sql.elements import ColumnElement

from garrison.records.filters import (
    And,
    Compare,
    Field,
    FilterError,
    In,
    Literal,
    LiteralValue,
    Macro,
    Node,
    Operand,
    Or,
)
from garrison.records.values import parse_date, parse_datetime

# "id": record ids, owners and relations, stored as ASCII (``ascii_bin`` on MySQL/MariaDB).
# Compared with text values they are text, but a non-ASCII value can equal no id and would
# not even compare there (an illegal mix of collations): it is refused as a literal and
# never matches as a macro value. An id column is never compared with a text column.
Kind = TypingLiteral["text", "id", "integer", "number", "boolean", "date", "datetime", "json"]
_ORDERED: frozenset[str] = frozenset({"text", "id", "integer", "number", "date", "datetime"})
_TEXTUAL: frozenset[str] = frozenset({"text", "id"})
_PY_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


@dataclass(frozen=True)
class ColumnRef:
    """A filterable field: its SQL column and the kind its values are coerced to."""

    column: ColumnElement[Any]
    kind: Kind


@dataclass(frozen=True)
class AuthValues:
    id: str | None = None
    role: str | None = None


Resolver = Callable[[str], ColumnRef | None]


def coerce(value: LiteralValue, kind: Kind) -> Any:
    """Convert a literal to the Python value stored for ``kind``; ValueError when it can't."""
    if kind == "text":
        if isinstance(value, str):
            return value
        raise ValueError("expects a string")
    if kind == "id":
        if isinstance(value, str) and value.isascii():
            return value
        raise ValueError("expects an id (ASCII characters only)")
    if kind == "integer":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError("expects an integer")
    if kind == "number":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        raise ValueError("expects a number")
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        raise ValueError("expects true or false")
    if kind == "date":
        day = parse_date(value)
        if day is None:
            raise ValueError("expects a date as 'YYYY-MM-DD'")
        return day
    if kind == "datetime":
        moment = parse_datetime(value)
        if moment is None:
            raise ValueError("expects an ISO 8601 date-time")
        return moment.replace(tzinfo=None)  # naive UTC, like @now
    raise ValueError("can only be compared with null")


@dataclass(frozen=True)
class _Value:
    """A resolved operand: a column, or a Python value of a known kind (or untyped)."""

    sql: ColumnElement[Any] | None
    value: Any
    kind: Kind | None
    pos: int
    is_null_literal: bool = False


class _Compiler:
    def __init__(self, resolve: Resolver, auth: AuthValues, now: datetime) -> None:
        self.resolve = resolve
        self.auth = auth
        self.now = now

    def operand(self, operand: Operand) -> _Value:
        if isinstance(operand, Field):
            ref = self.resolve(operand.name)
            if ref is None:
                raise FilterError(f"unknown field {operand.name!r}", operand.pos)
            return _Value(ref.column, None, ref.kind, operand.pos)
        if isinstance(operand, Macro):
            if operand.name == "@now":
                return _Value(None, self.now, "datetime", operand.pos)
            value = self.auth.id if operand.name == "@auth.id" else self.auth.role
            return _Value(None, value, "text", operand.pos)
        return _Value(None, operand.value, None, operand.pos, operand.value is None)

    def node(self, node: Node) -> ColumnElement[bool]:
        if isinstance(node, And):
            return and_(*(self.node(item) for item in node.items))
        if isinstance(node, Or):
            return or_(*(self.node(item) for item in node.items))
        if isinstance(node, In):
            return self.in_(node)
        return self.compare(node)

    def in_(self, node: In) -> ColumnElement[bool]:
        target = self.operand(node.operand)
        if target.kind is None:
            raise FilterError("the left side of 'in' must be a field or @macro", target.pos)
        values = [self._coerce(item, target.kind) for item in node.values]
        if target.sql is None:
            return true() if target.value is not None and target.value in values else false()
        return target.sql.in_(values)

    def _coerce(self, literal: Literal | _Value, kind: Kind) -> Any:
        value = literal.value
        if value is None:
            raise FilterError("null is not a value here; use '= null' or '!= null'", literal.pos)
        try:
            return coerce(value, kind)
        except ValueError as exc:
            raise FilterError(f"this comparison {exc}", literal.pos) from None

    def compare(self, node: Compare) -> ColumnElement[bool]:
        left, right = self.operand(node.left), self.operand(node.right)
        if left.is_null_literal or right.is_null_literal:
            return self._null_check(node, left, right)
        if left.kind is None and right.kind is None:
            raise FilterError("a comparison needs a field or @macro on one side", node.pos)
        kind = left.kind or right.kind
        assert kind is not None
        if left.kind is None:
            left = _Value(None, self._coerce(left, kind), kind, left.pos)
        if right.kind is None:
            right = _Value(None, self._coerce(right, kind), kind, right.pos)
        self._check_kinds(node, left, right)
        if (left.sql is None and left.value is None) or (right.sql is None and right.value is None):
            return false()  # an absent @auth value never matches
        if _unmatchable_id(left, right) or _unmatchable_id(right, left):
            # A macro's non-ASCII value against an id column: equal to no id.
            if node.op in ("!=", "!~"):
                return self._null_check_not(left, right)
            return false()
        if node.op in ("~", "!~"):
            return self._contains(node, left, right)
        if left.sql is None and right.sql is None:
            return true() if _PY_OPS[node.op](left.value, right.value) else false()
        lhs = left.sql if left.sql is not None else left.value
        rhs = right.sql if right.sql is not None else right.value
        result: ColumnElement[bool] = _PY_OPS[node.op](lhs, rhs)  # type: ignore[assignment]
        return result

    def _null_check_not(self, left: _Value, right: _Value) -> ColumnElement[bool]:
        column = left.sql if left.sql is not None else right.sql
        assert column is not None
        return column.is_not(None)

    def _check_kinds(self, node: Compare, left: _Value, right: _Value) -> None:
        numeric = {"integer", "number"}
        same = left.kind == right.kind or {left.kind, right.kind} <= numeric
        if {left.kind, right.kind} == {"id", "text"}:
            if left.sql is not None and right.sql is not None:
                raise FilterError("an id field cannot be compared with a text field", node.pos)
            same = True
        if not same:
            raise FilterError(f"cannot compare {left.kind} with {right.kind}", node.pos)
        if node.op in (">", ">=", "<", "<=") and left.kind not in _ORDERED:
            raise FilterError(f"{node.op} does not apply to {left.kind} fields", node.pos)
        if node.op in ("~", "!~") and left.kind not in _TEXTUAL:
            raise FilterError(f"{node.op} applies to text fields only", node.pos)
        if left.kind == "json":
            raise FilterError("JSON fields can only be compared with null", node.pos)

    def _contains(self, node: Compare, left: _Value, right: _Value) -> ColumnElement[bool]:
        if left.sql is None:
            if right.sql is not None:
                raise FilterError("~ needs the field on its left", node.pos)
            found = str(right.value).lower() in str(left.value).lower()
            return true() if found == (node.op == "~") else false()
        # Case-insensitive on both backends: both sides lower-cased in SQL (SQLite folds
        # ASCII letters only, MySQL/MariaDB all of Unicode).
        if right.sql is not None:
            pattern: ColumnElement[Any] = func.concat("%", right.sql, "%")
        else:
            escaped = "".join("\\" + c if c in "\\%_" else c for c in str(right.value))
            pattern = literal(f"%{escaped}%")
        expr: ColumnElement[bool] = func.lower(left.sql).like(func.lower(pattern), escape="\\")
        return expr if node.op == "~" else not_(expr)

    def _null_check(self, node: Compare, left: _Value, right: _Value) -> ColumnElement[bool]:
        if node.op not in ("=", "!="):
            raise FilterError(f"null can only be compared with = or !=, not {node.op}", node.pos)
        other = right if left.is_null_literal else left
        if other.is_null_literal:
            raise FilterError("a comparison needs a field or @macro on one side", node.pos)
        if other.sql is None:
            is_null = other.value is None
            return true() if is_null == (node.op == "=") else false()
        return other.sql.is_(None) if node.op == "=" else other.sql.is_not(None)


def _unmatchable_id(column: _Value, value: _Value) -> bool:
    return (
        column.kind == "id"
        and column.sql is not None
        and value.sql is None
        and isinstance(value.value, str)
        and not value.value.isascii()
    )


def compile_expression(
    node: Node, *, resolve: Resolver, auth: AuthValues | None = None, now: datetime | None = None
) -> ColumnElement[bool]:
    """The SQL WHERE expression for ``node``; raises ``FilterError`` on a type mismatch or
    an unknown field."""
    moment = now or datetime.now(UTC).replace(tzinfo=None)
    return _Compiler(resolve, auth or AuthValues(), moment).node(node)
