"""The content type of an upload, read from its first bytes (the WHATWG MIME Sniffing
signatures), never from the client's ``Content-Type`` or the file name: a ``.png`` that is
HTML is ``text/html`` here, and the field's allow-list decides on that."""

from __future__ import annotations

SNIFF_BYTES = 512
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
    (b"PK\x03\x04", "application/zip"),
    (b"\x1f\x8b\x08", "application/gzip"),
    (b"BM", "image/bmp"),
    (b"ID3", "audio/mpeg"),
    (b"OggS\x00", "application/ogg"),
)
_HTML_TAGS = (
    b"<!doctype html",
    b"<html",
    b"<head",
    b"<script",
    b"<iframe",
    b"<h1",
    b"<div",
    b"<font",
    b"<table",
    b"<a",
    b"<style",
    b"<title",
    b"<b",
    b"<body",
    b"<br",
    b"<p",
    b"<!--",
    b"<meta",
    b"<img",
    b"<svg",
    b"<object",
    b"<embed",
    b"<form",
)
# Types a browser renders as an image (shown inline, thumbnails possible).
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


def sniff(head: bytes) -> str:
    for signature, mime in _SIGNATURES:
        if head.startswith(signature):
            return mime
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:12] in (b"ftypmp42", b"ftypisom"):
        return "video/mp4"
    text = head.lstrip(b"\t\n\x0c\r \xef\xbb\xbf").lower()
    if text.startswith(b"<?xml"):
        return "image/svg+xml" if b"<svg" in text else "application/xml"
    for tag in _HTML_TAGS:
        if text.startswith(tag) and text[len(tag) : len(tag) + 1] in (b" ", b">", b"", b"\n"):
            return "image/svg+xml" if tag == b"<svg" else "text/html"
    if b"\x00" not in head:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 3:  # not just a character cut at the end
                return "application/octet-stream"
        return "text/plain"
    return "application/octet-stream"


def allowed(mime: str, allow: list[str] | None) -> bool:
    if not allow:
        return True
    return any(
        mime == entry or (entry.endswith("/*") and mime.startswith(entry[:-1])) for entry in allow
    )
