"""The seam through which record writes reach the files that file fields point at.

``records`` sits beside ``files`` in the domain layer and must not import it (``files``
calls the records services, so the other direction would be a cycle). A record write that
touches a file field hands the change to the installed ``Attachments`` in the write's own
transaction: it checks that every new id is an upload the caller may attach, binds it to
the record, and releases the files the change dropped. The composition roots install it
(``garrison.files.install_attachments``); without one, writing a file field is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from garrison.errors import ValidationFailed

if TYPE_CHECKING:
    from garrison.records.query import Caller
    from garrison.records.registry import Collection


class Attachments(Protocol):
    async def attach(
        self,
        session: AsyncSession,
        *,
        collection: Collection,
        record_id: str,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any],
        caller: Caller,
    ) -> None:
        """Bind the ids in ``after``'s file fields that ``before`` lacks; release dropped ones."""

    async def detach(
        self, session: AsyncSession, *, collection: Collection, record_id: str, caller: Caller
    ) -> None:
        """Release every file of a record that is being deleted."""


_installed: Attachments | None = None


def install(attachments: Attachments | None) -> None:
    global _installed
    _installed = attachments


def has_files(collection: Collection) -> bool:
    return any(field.type == "file" for field in collection.spec.fields)


async def attach(
    session: AsyncSession,
    *,
    collection: Collection,
    record_id: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any],
    caller: Caller,
) -> None:
    touched = [f.name for f in collection.spec.fields if f.type == "file" and f.name in after]
    if not touched:
        return
    if _installed is None:
        raise ValidationFailed(
            "file storage is not enabled in this process",
            errors=[{"pointer": f"#/{name}", "detail": "cannot be written"} for name in touched],
        )
    await _installed.attach(
        session,
        collection=collection,
        record_id=record_id,
        before=before,
        after=after,
        caller=caller,
    )


async def detach(
    session: AsyncSession, *, collection: Collection, record_id: str, caller: Caller
) -> None:
    if _installed is not None and has_files(collection):
        await _installed.detach(session, collection=collection, record_id=record_id, caller=caller)
