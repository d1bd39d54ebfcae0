"""The issue's bad input for uploads and downloads, on both backends: each a 4xx problem
naming the cause, nothing stored (no row, no object, no temporary file left behind)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from garrison.settings import Settings
from tests.fileskit import RECORDS, FilesApp, files_app, png, png_header_only

BOUNDARY = "xYzBoUnDaRy"
MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


@pytest.fixture
async def fa(settings: Settings) -> AsyncIterator[FilesApp]:
    async with files_app(settings) as app:
        yield app


def part(name: str | None, body: bytes, filename: str | None = None) -> bytes:
    disposition = "form-data" + (f'; name="{name}"' if name is not None else "")
    if filename is not None:
        disposition += f'; filename="{filename}"'
    return f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + body + b"\r\n"


def body(*parts: bytes, closed: bool = True) -> bytes:
    return b"".join(parts) + (f"--{BOUNDARY}--\r\n".encode() if closed else b"")


async def nothing_stored(fa: FilesApp) -> None:
    assert await fa.rows() == []
    assert await fa.objects() == []
    root = getattr(fa.storage, "root", None)
    if root is not None:
        assert list((root / ".tmp").iterdir()) == []


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    parsed: dict[str, Any] = response.json()
    return parsed


@pytest.mark.parametrize(
    ("payload", "status", "cause"),
    [
        (body(part("avatar", png(), "a.png"), closed=False), 400, "truncated"),
        (body(part(None, b"x", "a.png")), 400, "no name"),
        (body(part("title", b"plain")), 400, "is not a file"),
        (body(part("data", b"{not json")), 400, "not valid JSON"),
        (body(part("data", b"[1]")), 400, "JSON object"),
        (body(part("nope", b"x", "a.png")), 422, "names no file field"),
        (body(*[part("data", b"{}")] * 2), 400, "twice"),
        (body(*[part(f"p{i}", b"", "a.txt") for i in range(10_000)]), 400, "more than 100 parts"),
        (b"--" + BOUNDARY.encode() + b"\r\ngarbage\r\n\r\n", 400, "multipart"),
    ],
)
async def test_malformed_bodies(fa: FilesApp, payload: bytes, status: int, cause: str) -> None:
    alice = await fa.user()
    response = await fa.client.post(RECORDS, content=payload, headers=alice | MULTIPART)
    assert cause in str(problem(response, status)["detail"])
    await nothing_stored(fa)


@pytest.mark.parametrize(
    ("filename", "cause"),
    [
        ("../../etc/passwd", "path separator"),
        ("a\\b.png", "path separator"),
        ("a\x00.png", "NUL"),
        ("a" * 5000 + ".png", "longer than 255"),
    ],
)
async def test_unsafe_file_names(fa: FilesApp, filename: str, cause: str) -> None:
    alice = await fa.user()
    payload = body(part("avatar", png(), filename))
    response = await fa.client.post(RECORDS, content=payload, headers=alice | MULTIPART)
    found = problem(response, 422)
    [error] = found["errors"]
    assert error["pointer"] == "#/avatar"
    assert cause in error["detail"]
    await nothing_stored(fa)


async def test_a_file_over_the_limit_is_refused_while_streaming(fa: FilesApp) -> None:
    alice = await fa.user()
    big = png() + b"\x00" * (4 * 1024 * 1024)  # the avatar field takes 3 MiB

    async def chunks() -> AsyncIterator[bytes]:
        yield part("avatar", b"", "a.png")[:-2]  # the part's headers, no body yet
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]
        yield f"\r\n--{BOUNDARY}--\r\n".encode()

    response = await fa.client.post(RECORDS, content=chunks(), headers=alice | MULTIPART)
    found = problem(response, 413)
    assert found["errors"] == [{"pointer": "#/avatar", "detail": "is too large"}]
    await nothing_stored(fa)


async def test_a_wrong_type_is_refused_by_its_content(fa: FilesApp) -> None:
    alice = await fa.user()
    html = b"<!DOCTYPE html><script>alert(1)</script>"
    response = await fa.create(alice, avatar=("evil.png", html, "image/png"))
    found = problem(response, 422)
    assert "text/html" in str(found["errors"])
    assert found["errors"][0]["pointer"] == "#/avatar"
    await nothing_stored(fa)


async def test_a_failed_record_leaves_no_orphan(fa: FilesApp) -> None:
    alice = await fa.user()
    response = await fa.create(
        alice, data={"title": "x" * 500}, avatar=("a.png", png(), "image/png")
    )
    assert problem(response, 422)["errors"][0]["pointer"] == "#/title"
    await nothing_stored(fa)


async def test_anonymous_callers_cannot_upload(fa: FilesApp) -> None:
    response = await fa.client.post("/api/v1/files", files={"file": ("a.png", png(), "image/png")})
    problem(response, 401)
    await nothing_stored(fa)


async def test_thumbnail_sizes_and_bombs(fa: FilesApp) -> None:
    alice = await fa.user()
    bomb = await fa.create(alice, avatar=("bomb.png", png_header_only(100_000, 100_000), "x/y"))
    assert bomb.status_code == 201, bomb.text
    record = bomb.json()
    url = f"{RECORDS}/{record['id']}/files/avatar/{record['avatar']}"
    refused = await fa.client.get(url, params={"thumb": "64x64"}, headers=alice)
    assert "pixels" in str(problem(refused, 422)["errors"])
    other = await fa.client.get(url, params={"thumb": "65x65"}, headers=alice)
    assert problem(other, 422)["errors"] == [
        {"parameter": "thumb", "detail": "must be one of: 64x64, 10x10"}
    ]
    assert [k for k in await fa.objects() if k.startswith("thumbs/")] == []


async def test_bad_ids_and_tokens_are_404_or_403(fa: FilesApp) -> None:
    alice = await fa.user()
    record = (await fa.create(alice, avatar=("a.png", png(), "image/png"))).json()
    base = f"{RECORDS}/{record['id']}/files"
    for url in (
        f"{base}/avatar/{'0' * 36}",
        f"{base}/title/{record['avatar']}",
        f"{base}/nope/{record['avatar']}",
        f"{RECORDS}/{'1' * 36}/files/avatar/{record['avatar']}",
        f"{base}/avatar/%00",
    ):
        problem(await fa.client.get(url, headers=alice), 404)
    for token in ("", "x", "1.2.3", "9" * 30 + ".k.m", "1.%00.x"):
        response = await fa.client.get(f"{base}/avatar/{record['avatar']}", params={"token": token})
        problem(response, 403)
