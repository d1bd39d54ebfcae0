"""A bad-input corpus, on both backends: the reproductions of the hardening issue and their
neighbours, through every path parameter, query parameter and header of the API.

Every answer must be a 4xx problem (never a 500); the specific cases must give the status
the issue names. In-process over ASGI (no sockets); the protocol-level limits of the HTTP
server itself are pinned by ``test_protocol_limits_of_the_http_server`` (a real server).
"""

from __future__ import annotations

import re
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import mysql, sqlite

from garrison.records.filters import FilterError
from garrison.records.filters import parse as parse_filter
from garrison.records.sql import ColumnRef, compile_expression
from garrison.runtime import runtime_of
from garrison.settings import Settings
from tests.authkit import AuthApp, auth_app, bearer
from tests.conftest import make_settings
from tests.helpers import LoggedProcess, drop_all_collections

PROBLEM = "application/problem+json"
HUGE_INT = "9" * 5000
# Path and query values, percent-encoded as a client would put them on the wire.
BAD_VALUES = [
    "%C3%A9%E2%80%AE%F0%9F%98%80",  # é, an RTL override, an emoji
    "%00",  # NUL
    "%ED%A0%80",  # a lone surrogate as UTF-8 bytes (not valid UTF-8)
    "%FF%FE",  # not UTF-8 at all
    "a" * 5000,
    HUGE_INT,
    "-1e400",
    "%27%20or%201%3D1%20--",  # ' or 1=1 --
]
BAD_HEADERS = ["é".encode(), b"\xed\xa0\x80", b"x" * 8000, HUGE_INT.encode()]


@pytest.fixture
async def kit(settings: Settings) -> AsyncIterator[AuthApp]:
    async with auth_app(settings) as app:
        yield app
        await drop_all_collections(runtime_of(app.running.app).db)


@pytest.fixture
async def fresh_kit(fresh_database_url: str, tmp_path: Path) -> AsyncIterator[AuthApp]:
    """On a database of its own: the last-admin case counts every admin there is."""
    async with auth_app(make_settings(tmp_path, database_url=fresh_database_url)) as app:
        yield app


def _assert_problem(response: httpx.Response, *statuses: int) -> None:
    where = f"{response.request.method} {response.request.url}"
    assert response.status_code < 500, (where, response.status_code, response.text[:500])
    if statuses:
        assert response.status_code in statuses, (where, response.status_code, response.text)
    if response.status_code >= 400:
        if response.request.url.path.startswith("/ofrep/"):
            # OFREP clients read the protocol's own error shape, not problem+json.
            body = response.json()
            assert "errorCode" in body or body.get("type", "").startswith("urn:"), where
            return
        assert response.headers["content-type"].startswith(PROBLEM), where


async def _tokens(kit: AuthApp) -> dict[str, dict[str, str]]:
    return {"admin": bearer(await kit.token(role="admin")), "user": bearer(await kit.token())}


async def _collections(kit: AuthApp, admin: dict[str, str]) -> dict[str, str]:
    """Three collections under names of this test's own (the MariaDB database is shared)."""
    tag = uuid.uuid4().hex[:8]
    names = {"posts": f"posts_{tag}", "diaries": f"diaries_{tag}", "links": f"links_{tag}"}
    posts = {
        "name": names["posts"],
        "fields": [
            {"name": "title", "type": "text", "max_length": 65535},
            {"name": "n", "type": "integer"},
            {"name": "score", "type": "number"},
            {"name": "data", "type": "json"},
        ],
        "rules": {"list": "", "view": "", "create": "", "update": "", "delete": ""},
    }
    response = await kit.client.post("/api/v1/collections", json=posts, headers=admin)
    assert response.status_code == 201, response.text
    private = {
        "name": names["diaries"],
        "fields": [{"name": "text", "type": "text"}],
        "rules": {
            "list": "owner = @auth.id",
            "view": "owner = @auth.id",
            "create": "",
            "update": "owner = @auth.id",
            "delete": "owner = @auth.id",
        },
    }
    response = await kit.client.post("/api/v1/collections", json=private, headers=admin)
    assert response.status_code == 201, response.text
    links = {
        "name": names["links"],
        "fields": [{"name": "to", "type": "relation", "collection": names["diaries"]}],
        "rules": {"list": "", "view": "", "create": "", "update": "", "delete": ""},
    }
    response = await kit.client.post("/api/v1/collections", json=links, headers=admin)
    assert response.status_code == 201, response.text
    return names


def _operations(document: dict[str, Any]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                found.append((method.upper(), path, operation.get("parameters", [])))
    return found


async def test_every_parameter_and_header_with_bad_values(kit: AuthApp) -> None:
    tokens = await _tokens(kit)
    posts = (await _collections(kit, tokens["admin"]))["posts"]
    document = (await kit.client.get("/api/v1/openapi.json")).json()
    skipped = {"/api/v1/auth/logout", "/api/v1/auth/password"}  # would end the admin's token
    for method, path, parameters in _operations(document):
        if path in skipped:
            continue
        names = re.findall(r"{(\w+)}", path)
        query = [p["name"] for p in parameters if p["in"] == "query"]
        headers = [p["name"] for p in parameters if p["in"] == "header"]
        for value in BAD_VALUES:
            url = path
            for name in names:  # a bad value in each path parameter, the others plausible
                url = url.replace("{" + name + "}", posts if name == "name" else value)
            url += "?" + "&".join(f"{q}={value}" for q in query) if query else ""
            # As the admin: past every permission check, into the handlers.
            response = await kit.client.request(method, url, headers=tokens["admin"], json={})
            _assert_problem(response)
        extra = ["If-Match", "Idempotency-Key"] if "/records" in path else []
        if path in ("/api/v1/auth/me", "/api/v1/collections/{name}/records", "/api/health"):
            extra += ["X-API-Key", "Authorization"]
        for header in [*headers, *extra]:
            for raw in BAD_HEADERS:
                sent = [(header.encode(), raw)]
                if header != "Authorization":
                    sent.append((b"authorization", tokens["admin"]["Authorization"].encode()))
                url = path.replace("{name}", posts)
                url = re.sub(r"{\w+}", "x", url)
                response = await kit.client.request(method, url, headers=sent, json={})
                _assert_problem(response)


async def test_the_issue_reproductions(fresh_kit: AuthApp) -> None:
    kit = fresh_kit
    tokens = await _tokens(kit)
    admin, user = tokens["admin"], tokens["user"]
    names = await _collections(kit, admin)
    client = kit.client
    records = f"/api/v1/collections/{names['posts']}/records"
    diaries = f"/api/v1/collections/{names['diaries']}/records"
    links = f"/api/v1/collections/{names['links']}/records"

    # 1: ids that cannot exist are 404 in the path, 400 in a filter; before any SQL.
    for verb in ("GET", "PATCH", "PUT", "DELETE"):
        _assert_problem(await client.request(verb, f"{records}/%C3%A9", headers=user, json={}), 404)
    for text in ("id = 'é'", "owner = 'é'", "id in ('é','a')", "id ~ 'é'"):
        _assert_problem(await client.get(records, params={"filter": text}, headers=user), 400)
    ok = await client.get(records, params={"filter": "title = 'é'"}, headers=user)
    assert ok.status_code == 200

    # 2, 3, 4: values no layer can store are 422 (with the pointer) or 400, never a 500.
    for body, pointer in (
        (b'{"data": 123456789012345678901234567890}', "#/data"),
        (b'{"data": {"a": [1, 2, 99999999999999999999]}}', "#/data/a/2"),
        (b'{"data": ' + b"[" * 40 + b"]" * 40 + b"}", "#/data"),
    ):
        for extra in ({}, {"Idempotency-Key": "k-" + pointer}):
            response = await client.post(
                records, content=body, headers=user | extra | {"content-type": "application/json"}
            )
            _assert_problem(response, 422)
            assert response.json()["errors"][0]["pointer"].startswith(pointer), response.text
    for body in (b'{"data": 1e400}', b'{"title": "\\ud800"}', b'{"data": NaN}',
                 b'{"title": "\xed\xa0\x80"}', b'{"data": {"\\udfff": 1}}'):  # fmt: skip
        response = await client.post(
            records, content=body, headers=user | {"content-type": "application/json"}
        )
        _assert_problem(response, 400, 422)

    # 5: non-finite and out-of-range numbers in filters are refused by the parser.
    for text in ("n > 1e400", "n > -1e400", "score < -1e400", f"n = {'9' * 30}"):
        _assert_problem(await client.get(records, params={"filter": text}, headers=user), 400)

    # 6: an If-Match of thousands of digits is a precondition that fails, not a 500.
    made = await client.post(records, json={"title": "x"}, headers=user)
    record = made.json()["id"]
    for tag in (b"9" * 5000, b'"' + b"9" * 5000 + b'"', "²".encode()):
        sent = [(b"authorization", user["Authorization"].encode()), (b"if-match", tag)]
        response = await client.patch(f"{records}/{record}", json={"title": "y"}, headers=sent)
        _assert_problem(response, 412, 422)

    # 7: whatever validation accepts can be stored, audit entry included.
    stored: list[dict[str, Any]] = [
        {"title": "😀" * 65535},
        {"data": {"blob": "x" * 900_000}},
        {"data": {f"k{i}": i for i in range(50_000)}},
    ]
    for record_body in stored:
        response = await client.post(records, json=record_body, headers=user)
        assert response.status_code == 201, response.text[:300]

    # 8: a collection a relation points at cannot be deleted: 409 naming the other one.
    response = await client.delete(
        f"/api/v1/collections/{names['diaries']}?confirm=true", headers=admin
    )
    _assert_problem(response, 409)
    assert names["links"] in response.json()["detail"]

    # 9: a json_schema nested 500 deep is refused when the field is defined.
    deep = '{"type":"object","properties":{"a":' * 500 + '{"type":"object"}' + "}}" * 500
    definition = (
        '{"name":"deep_'
        + uuid.uuid4().hex[:8]
        + '","fields":[{"name":"d","type":"json","json_schema":'
        + deep
        + "}]}"
    )
    response = await client.post(
        "/api/v1/collections",
        content=definition.encode(),
        headers=admin | {"content-type": "application/json"},
    )
    _assert_problem(response, 400, 422)

    # 14: two credential headers are refused before rate limiting or authentication.
    doubled = [
        (b"authorization", b"Bearer junk"),
        (b"authorization", admin["Authorization"].encode()),
    ]
    _assert_problem(await client.get("/api/v1/auth/me", headers=doubled), 400)
    keys = [(b"x-api-key", b"gar_a"), (b"x-api-key", b"gar_b")]
    _assert_problem(await client.get("/api/v1/auth/me", headers=keys), 400)

    # 15: a relation may only point at a record the caller can view (no existence oracle).
    other = bearer(await kit.token())
    hidden = await client.post(diaries, json={"text": "mine"}, headers=other)
    assert hidden.status_code == 201
    to_hidden = await client.post(links, json={"to": hidden.json()["id"]}, headers=user)
    to_nothing = await client.post(
        links, json={"to": "01900000-0000-7000-8000-000000000000"}, headers=user
    )
    _assert_problem(to_hidden, 422)
    _assert_problem(to_nothing, 422)
    assert to_hidden.json()["errors"] == to_nothing.json()["errors"]
    own = await client.post(links, json={"to": hidden.json()["id"]}, headers=other)
    assert own.status_code == 201, own.text

    # 16: the last active admin keeps its role; built-in roles are read-only.
    me = (await client.get("/api/v1/auth/me", headers=admin)).json()
    admins = (await client.get("/api/v1/admin/users", headers=admin)).json()["items"]
    assert [u["id"] for u in admins if "admin" in u["roles"]] == [me["id"]]
    response = await client.put(
        f"/api/v1/admin/users/{me['id']}/roles", json={"roles": ["user"]}, headers=admin
    )
    _assert_problem(response, 409)
    disable = await client.post(f"/api/v1/admin/users/{me['id']}/disable", headers=admin)
    _assert_problem(disable, 403, 409)
    response = await client.patch(
        "/api/v1/admin/roles/admin", json={"description": "mine now"}, headers=admin
    )
    _assert_problem(response, 403)
    assert (await client.get("/api/v1/auth/me", headers=admin)).status_code == 200

    # 19: no trailing-slash redirect to a client-chosen host.
    response = await client.get(
        "/api/v1/collections/", headers=admin | {"host": "evil.example"}, follow_redirects=False
    )
    assert "location" not in response.headers
    _assert_problem(response, 404)

    # 20: definitions that cannot be honoured are refused when they are made.
    bad_default = {
        "name": f"bad_{uuid.uuid4().hex[:8]}",
        "fields": [{"name": "n", "type": "integer", "default": "abc"}],
    }
    _assert_problem(await client.post("/api/v1/collections", json=bad_default, headers=admin), 422)
    required = {"kind": "add_field", "field": {"name": "must", "type": "text", "required": True}}
    changes = f"/api/v1/collections/{names['posts']}/changes"
    response = await client.post(changes, json=required, headers=admin)
    _assert_problem(response, 422)
    field = {"name": "must", "type": "text", "required": True, "default": "-"}
    with_default = {"kind": "add_field", "field": field}
    response = await client.post(changes, json=with_default, headers=admin)
    assert response.status_code in (200, 201), response.text


# --- 5: no literal of any type can change the SQL text ----------------------------------------

_LITERALS = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.booleans(),
)


_FIELDS = {"i": "integer", "n": "number", "t": "text", "b": "boolean", "o": "id"}
_CANONICAL = {"i": "0", "n": "0.5", "t": "'x'", "b": "true", "o": "'x'"}


def _render(field: str, literal: str) -> str:
    """The SQL text of a filter comparing ``field`` with ``literal`` four ways."""
    from sqlalchemy import column

    columns = {name: ColumnRef(column(name), kind) for name, kind in _FIELDS.items()}  # type: ignore[arg-type]
    node = parse_filter(
        f"{field} = {literal} || {field} != {literal} || ({field} = {literal} && {field} != null)"
    )
    expression = compile_expression(node, resolve=columns.get)
    return str(expression.compile(dialect=mysql.dialect())) + str(
        expression.compile(dialect=sqlite.dialect())
    )


def _field_for(value: Any) -> str:
    if isinstance(value, bool):
        return "b"
    if isinstance(value, int):
        return "i"
    if isinstance(value, float):
        return "n"
    return "o" if value.isascii() else "t"


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return repr(value)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=_LITERALS)
def test_no_literal_changes_the_sql_text(value: Any) -> None:
    """Whatever the literal, the statement is the same text: values are bound parameters
    (a -inf reaching the driver rendered as the identifier ``infe0``)."""
    field = _field_for(value)
    # true/false are a closed set SQLAlchemy writes inline; every other value is bound.
    canonical = _literal(value) if field == "b" else _CANONICAL[field]
    assert _render(field, _literal(value)) == _render(field, canonical), value


def test_non_finite_and_wide_literals_are_refused() -> None:
    for text in ("n = 1e400", "n = -1e400", f"n = {'9' * 20}", f"n = -{'9' * 4000}"):
        with pytest.raises(FilterError):
            parse_filter(text)


# --- 18: what the HTTP server refuses before the app ---------------------------------------


@pytest.mark.slow
def test_protocol_limits_of_the_http_server(dev_server: tuple[LoggedProcess, int]) -> None:
    """Refused by granian itself (no problem body is possible there): each gets a 4xx
    status line and the connection closes; nothing reaches the app, nothing is a 5xx."""
    _server, port = dev_server
    cases = [
        b"GET /api/health/live HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"GET /api/he\x01alth HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /api/health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 70_000 + b"\r\n\r\n",
    ]
    for raw in cases:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(raw)
            answer = sock.recv(4096)
        status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.") else 0
        assert 400 <= status < 500, (raw[:60], answer[:200])
