"""The files domain's errors (drawn in ``garrison.errors``' tree)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from garrison.errors import (
    BadRequest,
    Forbidden,
    GarrisonError,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
)


class FileNotFound(NotFound):
    """No such file on this record, or the caller may not see the record."""

    slug, title = "file-not-found", "File Not Found"


class FileTooLarge(PayloadTooLarge):
    """An uploaded file passed its field's size limit while it streamed in."""

    slug, title = "file-too-large", "File Too Large"


class MalformedUpload(BadRequest):
    """The multipart body is truncated, or a part lacks a name or is not allowed."""

    slug, title = "malformed-upload", "Malformed Upload"


class InvalidSignedUrl(Forbidden):
    """A signed file link expired, was altered, or names another file."""

    slug, title = "invalid-signed-url", "Invalid Signed URL"


class RangeNotSatisfiable(GarrisonError):
    """The ``Range`` lies outside the file (``Content-Range`` gives its size)."""

    status, slug, title = 416, "range-not-satisfiable", "Range Not Satisfiable"


class StorageUnavailable(ServiceUnavailable):
    """The object storage failed or is out of reach; the request can be retried."""

    slug, title = "storage-unavailable", "Storage Unavailable"


@contextlib.asynccontextmanager
async def storage_errors() -> AsyncIterator[None]:
    """A failure of the storage backend (not a refusal of ours) becomes a 503."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (OSError, BotoCoreError, ClientError) as exc:
        raise StorageUnavailable(f"file storage failed: {type(exc).__name__}") from exc


class StorageQuotaExceeded(PayloadTooLarge):
    """The upload would take the caller past their storage quota."""

    slug, title = "storage-quota-exceeded", "Storage Quota Exceeded"
