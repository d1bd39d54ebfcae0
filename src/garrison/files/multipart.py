"""A streaming ``multipart/form-data`` reader: parts arrive as events while the body is
still coming in, so a file goes to storage chunk by chunk and nothing is spooled to a
temporary file. python-multipart does the parsing; this module turns its callbacks into
``Start`` / bytes / ``End`` events and refuses what the issue lists as bad input: a
truncated body, a part without a name, too many parts, unsafe file names."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from garrison.errors import ValidationFailed
from garrison.files.errors import MalformedUpload

MAX_FILENAME = 255
MAX_HEADER_BYTES = 8192


@dataclass(frozen=True)
class Start:
    name: str
    filename: str | None


@dataclass(frozen=True)
class End:
    name: str


Event = Start | End | bytes


def boundary_of(content_type: str) -> bytes:
    mime, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if mime != b"multipart/form-data" or not boundary or len(boundary) > 200:
        raise MalformedUpload("the body must be multipart/form-data with a boundary")
    return boundary


def check_filename(name: str, filename: str) -> str:
    problem = None
    if not filename.strip():
        problem = "the file name is empty"
    elif len(filename) > MAX_FILENAME:
        problem = f"the file name is longer than {MAX_FILENAME} characters"
    elif "\x00" in filename or any(ord(c) < 32 or ord(c) == 127 for c in filename):
        problem = "the file name contains NUL or control characters"
    elif "/" in filename or "\\" in filename:
        problem = "the file name contains a path separator"
    elif filename in (".", ".."):
        problem = "the file name is a path"
    if problem is not None:
        raise ValidationFailed(
            "an uploaded file has an unsafe name",
            errors=[{"pointer": f"#/{name}", "detail": problem}],
        )
    return filename


class _Collector:
    """python-multipart's callbacks, gathered into events for one ``write``."""

    def __init__(self, max_parts: int) -> None:
        self.events: list[Event] = []
        self.max_parts = max_parts
        self.parts = 0
        self.header_field = bytearray()
        self.header_value = bytearray()
        self.headers: dict[bytes, bytes] = {}
        self.header_bytes = 0
        self.name = ""
        self.ended = False
        self.in_part = False

    def callbacks(self) -> Any:
        return {
            "on_part_begin": self.part_begin,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
            "on_header_field": self.header_field_data,
            "on_header_value": self.header_value_data,
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_end": self.end,
        }

    def part_begin(self) -> None:
        self.parts += 1
        if self.parts > self.max_parts:
            raise MalformedUpload(f"the body has more than {self.max_parts} parts")
        self.headers, self.header_bytes = {}, 0

    def header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._count(end - start)
        self.header_field += data[start:end]

    def header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._count(end - start)
        self.header_value += data[start:end]

    def _count(self, size: int) -> None:
        self.header_bytes += size
        if self.header_bytes > MAX_HEADER_BYTES:
            raise MalformedUpload("a part's headers are too long")

    def header_end(self) -> None:
        self.headers[bytes(self.header_field).lower()] = bytes(self.header_value)
        self.header_field.clear()
        self.header_value.clear()

    def headers_finished(self) -> None:
        disposition = self.headers.get(b"content-disposition")
        if disposition is None:
            raise MalformedUpload(f"part {self.parts} has no Content-Disposition")
        kind, options = parse_options_header(disposition)
        raw_name = options.get(b"name")
        if kind != b"form-data" or not raw_name:
            raise MalformedUpload(f"part {self.parts} has no name")
        try:
            name = raw_name.decode("utf-8")
            raw_file = options.get(b"filename")
            filename = None if raw_file is None else raw_file.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedUpload(f"part {self.parts}'s name is not UTF-8") from None
        if len(name) > 100 or "\x00" in name:
            raise MalformedUpload(f"part {self.parts}'s name is not a field name")
        if filename is not None:
            check_filename(name, filename)
        self.name = name
        self.in_part = True
        self.events.append(Start(name, filename))

    def part_data(self, data: bytes, start: int, end: int) -> None:
        self.events.append(bytes(data[start:end]))

    def part_end(self) -> None:
        self.in_part = False
        self.events.append(End(self.name))

    def end(self) -> None:
        self.ended = True


async def events(
    stream: AsyncIterator[bytes], content_type: str, *, max_parts: int
) -> AsyncIterator[Event]:
    """The body's parts as events; ``MalformedUpload`` for a body that is not whole."""
    collector = _Collector(max_parts)
    parser = MultipartParser(
        boundary_of(content_type), collector.callbacks(), max_header_size=MAX_HEADER_BYTES
    )
    async for chunk in stream:
        if not chunk:
            continue
        if collector.ended:
            continue  # the epilogue after the closing boundary is ignored
        try:
            parser.write(chunk)
        except MultipartParseError:
            raise MalformedUpload("the multipart body is malformed") from None
        for event in collector.events:
            yield event
        collector.events.clear()
    if not collector.ended:
        raise MalformedUpload("the multipart body is truncated (no closing boundary)")
