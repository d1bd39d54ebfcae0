"""The files domain's errors (drawn in ``garrison.errors``' tree)."""

from __future__ import annotations

from garrison.errors import BadRequest, Forbidden, GarrisonError, NotFound, PayloadTooLarge


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
