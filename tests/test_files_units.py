"""The framework-free parts of the files domain: content sniffing, byte ranges, safe
``Content-Disposition`` values, signed tokens, the ``file`` field kind's definition."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from garrison.crypto import Keyring
from garrison.files import http, signing
from garrison.files.errors import InvalidSignedUrl, RangeNotSatisfiable
from garrison.files.sniff import allowed, sniff
from garrison.gateway.body_limit import BodyLimitMiddleware
from garrison.gateway.security_headers import SecurityHeadersMiddleware
from garrison.records.spec import FieldSpec
from garrison.settings import ConfigError, load_settings
from garrison.types import Receive, Scope, Send
from tests.fileskit import png


@pytest.mark.parametrize(
    ("head", "mime"),
    [
        (png(), "image/png"),
        (b"\xff\xd8\xff\xe0rest", "image/jpeg"),
        (b"GIF89a...", "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"%PDF-1.7", "application/pdf"),
        (b"  <!DOCTYPE html><p>x", "text/html"),
        (b"\xef\xbb\xbf<html>", "text/html"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'>", "image/svg+xml"),
        (b"<?xml version='1.0'?><svg>", "image/svg+xml"),
        (b"<?xml version='1.0'?><feed>", "application/xml"),
        (b"just some text", "text/plain"),
        ("caf\u00e9".encode() + b"\xc3", "text/plain"),  # a character cut at the end
        (b"\x00\x01\x02binary", "application/octet-stream"),
        (b"", "text/plain"),
    ],
)
def test_sniffing(head: bytes, mime: str) -> None:
    assert sniff(head) == mime


def test_allow_lists() -> None:
    assert allowed("image/png", None)
    assert allowed("image/png", ["image/*"])
    assert allowed("image/png", ["application/pdf", "image/png"])
    assert not allowed("text/html", ["image/*"])
    assert not allowed("image/svg+xml", ["image/png"])


@pytest.mark.parametrize(
    ("header", "wanted"),
    [
        (None, None),
        ("bytes=0-9", (0, 10)),
        ("bytes=90-", (90, 100)),
        ("bytes=90-500", (90, 100)),
        ("bytes=-10", (90, 100)),
        ("bytes=-500", (0, 100)),
        ("bytes=5-1", None),  # invalid: ignored, the whole file is sent
        ("bytes=0-1,5-6", None),  # several ranges: the whole file
        ("items=0-1", None),
        ("bytes=-", None),
    ],
)
def test_byte_ranges(header: str | None, wanted: tuple[int, int] | None) -> None:
    assert http.byte_range(header, 100) == wanted


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=1000-2000", "bytes=-0"])
def test_unsatisfiable_ranges(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable) as caught:
        http.byte_range(header, 100)
    assert caught.value.headers == {"Content-Range": "bytes */100"}


def test_content_disposition_is_safe() -> None:
    assert http.disposition("a.png", "image/png") == (
        "inline; filename=\"a.png\"; filename*=UTF-8''a.png"
    )
    value = http.disposition('Résumé "final"\r\n.pdf', "application/pdf")
    assert value.startswith('attachment; filename="Resume _final___.pdf"')
    assert "\r" not in value
    assert "\n" not in value
    assert value.endswith("filename*=UTF-8''R%C3%A9sum%C3%A9%20%22final%22%0D%0A.pdf")
    assert http.disposition("日本.txt", "text/plain").startswith('attachment; filename=".txt"')
    assert http.disposition("<svg>", "image/svg+xml").startswith("attachment;")


def test_signed_tokens() -> None:
    ring = Keyring("k" * 40)
    token = signing.sign(ring, file_id="f1", expires=2_000)
    signing.verify(ring, file_id="f1", token=token, now=1_999)
    for file_id, text, now, cause in [
        ("f2", token, 1_999, "altered"),
        ("f1", token, 2_001, "expired"),
        ("f1", "3000" + token[4:], 1_999, "altered"),
        ("f1", token + "x", 1_999, "altered"),
        ("f1", "x" * 300, 1_999, "malformed"),
    ]:
        with pytest.raises(InvalidSignedUrl, match=cause):
            signing.verify(ring, file_id=file_id, token=text, now=now)
    rotated = Keyring("n" * 40, ["k" * 40])
    signing.verify(rotated, file_id="f1", token=token, now=1_999)  # old links live on


@pytest.mark.parametrize(
    ("options", "cause"),
    [
        ({"thumbs": ["big"]}, "WxH"),
        ({"thumbs": ["0x10"]}, "WxH"),
        ({"mime_types": ["png"]}, "image/png"),
        ({"max_files": 0}, "greater than or equal to 1"),
        ({"max_files": 101}, "less than or equal to 100"),
        ({"max_size": 0}, "greater than or equal to 1"),
        ({"unique": True}, "cannot be indexed"),
        ({"max_length": 5}, "applies to text"),
    ],
)
def test_file_field_definitions(options: dict[str, object], cause: str) -> None:
    with pytest.raises(ValidationError, match=cause):
        FieldSpec.model_validate({"name": "f", "type": "file", **options})


def test_other_kinds_refuse_file_options() -> None:
    with pytest.raises(ValidationError, match="applies to file fields only"):
        FieldSpec.model_validate({"name": "t", "type": "text", "max_size": 10})


async def _echo(scope: Scope, receive: Receive, send: Send) -> None:
    """A three-line app: reads the whole body, answers its length."""
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


async def test_the_body_limit_is_raised_only_where_asked() -> None:
    app = BodyLimitMiddleware(
        _echo, max_bytes=10, raised=lambda scope: 100 if scope["path"] == "/up" else None
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.post("/up", content=b"x" * 50)).text == "50"
        assert (await client.post("/up", content=b"x" * 101)).status_code == 413
        assert (await client.post("/other", content=b"x" * 11)).status_code == 413


async def test_stored_files_are_sandboxed() -> None:
    app = SecurityHeadersMiddleware(_echo, sandboxed=re.compile(r"^/files/"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        served = await client.get("/files/x")
        other = await client.get("/api")
    assert served.headers["content-security-policy"].endswith("; sandbox")
    assert served.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" not in other.headers["content-security-policy"]


def test_an_s3_backend_needs_a_bucket(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="FILES__S3_BUCKET"):
        load_settings(_env_file=None, data_dir=tmp_path, files={"backend": "s3"})
    with pytest.raises(ConfigError, match="FILES__REPLICA_S3_BUCKET"):
        load_settings(_env_file=None, data_dir=tmp_path, files={"replica": "s3"})
