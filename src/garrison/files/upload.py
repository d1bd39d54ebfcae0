"""Reading an upload request: a multipart body becomes the record's JSON fields (the part
named ``data``) and files streamed into storage, each under its part's rules. Anything
stored is removed again if the body turns out bad."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from garrison.errors import MalformedBody, PayloadTooLarge, ValidationFailed
from garrison.files import multipart, service
from garrison.files.errors import MalformedUpload, storage_errors
from garrison.files.multipart import End, Start
from garrison.files.service import Receiver, Rules, Upload
from garrison.files.storage import Storage
from garrison.records.validation import check_body

DATA_PART = "data"


@dataclass(frozen=True)
class PartRules:
    rules: Rules
    max_files: int = 1


@dataclass
class Received:
    data: dict[str, Any] | None = None
    files: dict[str, list[Upload]] = field(default_factory=dict)

    @property
    def uploads(self) -> list[Upload]:
        return [upload for uploads in self.files.values() for upload in uploads]


def _parse_data(raw: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise MalformedBody("the 'data' part is not valid JSON", pointer="#/data") from None
    if not isinstance(data, dict):
        raise MalformedBody("the 'data' part must be a JSON object", pointer="#/data")
    check_body(data)
    return data


async def receive(
    stream: AsyncIterator[bytes],
    content_type: str,
    *,
    storage: Storage,
    parts: Mapping[str, PartRules],
    max_parts: int,
    max_data_bytes: int,
    allow_data: bool = True,
) -> Received:
    received = Received()
    try:
        async with storage_errors():
            await _read(
                stream,
                content_type,
                received,
                storage,
                parts,
                max_parts,
                max_data_bytes,
                allow_data,
            )
    except BaseException:
        await service.discard(storage, received.uploads)
        raise
    return received


async def _read(
    stream: AsyncIterator[bytes],
    content_type: str,
    received: Received,
    storage: Storage,
    parts: Mapping[str, PartRules],
    max_parts: int,
    max_data_bytes: int,
    allow_data: bool,
) -> None:
    current: Receiver | None = None
    text: bytearray | None = None
    try:
        async for event in multipart.events(stream, content_type, max_parts=max_parts):
            if isinstance(event, Start):
                current, text = _start(event, received, storage, parts, allow_data)
            elif isinstance(event, End):
                if current is not None:
                    received.files.setdefault(event.name, []).append(await current.finish())
                    current = None
                elif text is not None:
                    received.data = _parse_data(bytes(text))
                    text = None
            elif current is not None:
                await current.feed(event)
            elif text is not None:
                text += event
                if len(text) > max_data_bytes:
                    raise PayloadTooLarge(f"the 'data' part exceeds {max_data_bytes} bytes")
    except BaseException:
        if current is not None:
            await current.abort()
        raise


def _start(
    event: Start,
    received: Received,
    storage: Storage,
    parts: Mapping[str, PartRules],
    allow_data: bool,
) -> tuple[Receiver | None, bytearray | None]:
    if event.filename is None:
        if not allow_data or event.name != DATA_PART:
            expected = "files" if not allow_data else "the 'data' part and files"
            raise MalformedUpload(
                f"part {event.name!r} is not a file; this upload takes {expected}",
                errors=[{"pointer": f"#/{event.name}", "detail": "is not expected"}],
            )
        if received.data is not None:
            raise MalformedUpload("the 'data' part is given twice")
        return None, bytearray()
    rules = parts.get(event.name)
    pointer = f"#/{event.name}"
    if rules is None:
        raise ValidationFailed(
            f"part {event.name!r} names no file field",
            errors=[{"pointer": pointer, "detail": "is not a file field"}],
        )
    if len(received.files.get(event.name, [])) >= rules.max_files:
        raise ValidationFailed(
            "too many files for a field",
            errors=[{"pointer": pointer, "detail": f"takes at most {_files(rules.max_files)}"}],
        )
    assert event.filename is not None
    return Receiver(storage, filename=event.filename, rules=rules.rules), None


def _files(count: int) -> str:
    return "1 file" if count == 1 else f"{count} files"
