"""The filter language: parsing, errors with positions, and compiled SQL on both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    MetaData,
    Table,
    insert,
    select,
)

from garrison.db import Database
from garrison.records.filters import And, Compare, Field, FilterError, In, Literal, Or, parse
from garrison.records.sql import AuthValues, ColumnRef, compile_expression
from garrison.records.types import ExactText
from tests.conftest import make_settings

# --- parsing -----------------------------------------------------------------------------


def test_precedence_and_over_or() -> None:
    node = parse("a = 1 || b = 2 && c = 3")
    assert isinstance(node, Or)
    assert isinstance(node.items[1], And)


def test_parentheses_group() -> None:
    node = parse("(a = 1 || b = 2) && c = 3")
    assert isinstance(node, And)
    assert isinstance(node.items[0], Or)


def test_literals() -> None:
    node = parse("""a = 'it\\'s' && b = "x" && c = -1.5 && d = true && e = null && f = 10""")
    assert isinstance(node, And)
    values = [item.right.value for item in node.items if isinstance(item, Compare)]  # type: ignore[union-attr]
    assert values == ["it's", "x", -1.5, True, None, 10]


def test_in_list() -> None:
    node = parse("status in ('a', 'b', 'c')")
    assert node == In(Field("status", 0), (Literal("a", 11), Literal("b", 16), Literal("c", 21)), 7)


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("", 0, "empty"),
        ("a =", 3, "the end"),
        ("a = 1 &&", 8, "the end"),
        ("a == 1", 3, "expected a field"),
        ("(a = 1", 6, "')'"),
        ("a = 1)", 5, "unexpected ')'"),
        ("a = 'open", 4, "unterminated"),
        ("a = 1 # b", 6, "unexpected character"),
        ("@auth.secret = 1", 0, "unknown macro"),
        ("a in 1", 5, "'(' after in"),
        ("a = 'bad \\x escape'", 9, "unknown escape"),
        ("a 1", 2, "operator"),
        ("title = 'x'' OR 1=1 --'", 11, "unexpected"),
    ],
)
def test_errors_name_the_position(text: str, position: int, fragment: str) -> None:
    with pytest.raises(FilterError) as info:
        parse(text)
    assert info.value.position == position
    assert fragment in info.value.message


def test_limits() -> None:
    with pytest.raises(FilterError, match="nesting"):
        parse("(" * 40 + "a = 1" + ")" * 40)
    with pytest.raises(FilterError, match="comparisons"):
        parse(" && ".join(["a = 1"] * 101))
    with pytest.raises(FilterError, match="longer"):
        parse("a = '" + "x" * 5000 + "'")


@given(st.text(max_size=80))
def test_parser_never_fails_unexpectedly(text: str) -> None:
    position = None
    try:
        parse(text)
    except FilterError as exc:
        position = exc.position
    assert position is None or 0 <= position <= len(text)


# --- compiled SQL on a real table -----------------------------------------------------------

meta = MetaData()
items = Table(
    "filter_items",
    meta,
    Column("id", Integer, primary_key=True),
    Column("title", ExactText(100)),
    Column("owner", ExactText(36)),
    Column("score", Integer),
    Column("ratio", Float),
    Column("done", Boolean),
    Column("due", Date),
    Column("at", DateTime),
)
ROWS = [
    {
        "id": 1,
        "title": "Alpha 100%",
        "owner": "u1",
        "score": 10,
        "ratio": 0.5,
        "done": True,
        "due": date(2026, 1, 1),
        "at": datetime(2026, 1, 1, 12, 0),
    },
    {
        "id": 2,
        "title": "beta_two",
        "owner": "u2",
        "score": 20,
        "ratio": 1.5,
        "done": False,
        "due": date(2026, 6, 1),
        "at": datetime(2026, 6, 1, 8, 30),
    },
    {
        "id": 3,
        "title": "Gamma",
        "owner": "u1",
        "score": None,
        "ratio": None,
        "done": False,
        "due": None,
        "at": None,
    },
    {
        "id": 4,
        "title": "it's O'Reilly",
        "owner": None,
        "score": 30,
        "ratio": 2.0,
        "done": True,
        "due": date(2027, 1, 1),
        "at": datetime(2027, 1, 1, 0, 0),
    },
]
KINDS = {
    "title": "text",
    "owner": "text",
    "score": "integer",
    "ratio": "number",
    "done": "boolean",
    "due": "date",
    "at": "datetime",
    "id": "integer",
}


def resolve(name: str) -> ColumnRef | None:
    kind = KINDS.get(name)
    return ColumnRef(items.c[name], kind) if kind else None  # type: ignore[arg-type]


@pytest.fixture
async def db(database_url: str, tmp_path: Path) -> AsyncIterator[Database]:
    settings = make_settings(tmp_path, database_url=database_url)
    database = Database(settings.db_url, settings.db)
    async with database.transaction() as session:
        conn = await session.connection()
        await conn.run_sync(meta.drop_all)
        await conn.run_sync(meta.create_all)
        await session.execute(insert(items), ROWS)
    yield database
    async with database.transaction() as session:
        await (await session.connection()).run_sync(meta.drop_all)
    await database.dispose()


async def ids(db: Database, text: str, auth: AuthValues | None = None) -> list[int]:
    where = compile_expression(parse(text), resolve=resolve, auth=auth)
    async with db.read_session() as session:
        result = await session.execute(select(items.c.id).where(where).order_by(items.c.id))
        return [row[0] for row in result]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("score > 10", [2, 4]),
        ("score >= 10 && done = true", [1, 4]),
        ("score = null", [3]),
        ("score != null && owner = null", [4]),
        ("title ~ '100%'", [1]),
        ("title ~ '_'", [2]),
        ("title !~ 'a'", [4]),
        ("title ~ 'ALPHA'", [1]),
        ("title = 'alpha 100%'", []),
        ("title = 'Gamma '", []),
        ("owner in ('u1', 'u2') && (score < 15 || score = null)", [1, 3]),
        ("ratio > 1", [2, 4]),
        ("ratio > 0.75 && score <= 20", [2]),
        ("due >= '2026-06-01'", [2, 4]),
        ("at < '2026-06-01T10:00:00+01:00'", [1, 2]),
        ("at < '2026-06-01T10:00:00+02:00'", [1]),
        ("title = \"it's O'Reilly\"", [4]),
        ("title = 'x\\' OR 1=1 --'", []),
        ("title = ' OR 1=1 --' || id = 2", [2]),
        ("10 < score", [2, 4]),
    ],
)
async def test_filters_select_the_right_rows(db: Database, text: str, expected: list[int]) -> None:
    assert await ids(db, text) == expected


async def test_rules_with_auth_macros(db: Database) -> None:
    rule = "owner = @auth.id"
    assert await ids(db, rule, AuthValues(id="u1", role="user")) == [1, 3]
    assert await ids(db, rule, AuthValues()) == []  # anonymous: never matches
    admin_or_owner = "@auth.role = 'admin' || owner = @auth.id"
    assert await ids(db, admin_or_owner, AuthValues(id="u2", role="user")) == [2]
    assert await ids(db, admin_or_owner, AuthValues(id="x", role="admin")) == [1, 2, 3, 4]
    assert await ids(db, "@auth.id != null", AuthValues()) == []
    assert await ids(db, "@auth.id != null", AuthValues(id="u9")) == [1, 2, 3, 4]
    assert await ids(db, "at < @now && done = true", AuthValues()) == [1]  # row 4 is in 2027


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("nope = 1", "unknown field 'nope'"),
        ("score > 'ten'", "expects an integer"),
        ("done > true", "does not apply"),
        ("score ~ 1", "text fields only"),
        ("due = '2026-13-01'", "date"),
        ("score > null", "null can only"),
        ("1 = 1", "field or @macro"),
        ("title = score", "cannot compare"),
        ("owner in ('a', null)", "null is not a value"),
    ],
)
def test_type_errors_are_filter_errors(text: str, fragment: str) -> None:
    with pytest.raises(FilterError) as info:
        compile_expression(parse(text), resolve=resolve)
    assert fragment in info.value.message


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(st.text(max_size=40))
async def test_any_string_value_is_data_not_sql(db: Database, value: str) -> None:
    text = "title = '" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    expected = [row["id"] for row in ROWS if row["title"] == value]
    assert await ids(db, text) == expected
