"""File storage: ``file`` fields on collections, uploads streamed to a local directory or
S3-compatible storage, downloads under the record's view rule or a signed link,
thumbnails, and objects deleted through the outbox when their record lets go of them.

See ``docs/files.md``. The composition roots call ``install_attachments`` so record writes
reach this domain (``records.attachments``).
"""

from __future__ import annotations

from garrison.records import attachments
from garrison.settings import Settings

__all__ = ["install_attachments"]


def install_attachments(settings: Settings) -> None:
    """Record writes that touch file fields bind and release files through this domain."""
    from garrison.files.service import FileAttachments

    attachments.install(FileAttachments(settings.files.default_max_size))
