"""Personal data in audit entries, sealed per person.

An entry is about a person when its target is a user, else when it carries a record owned by
a user, else when a user acted. Its ``ip``, ``user_agent``, ``changes`` and ``data`` are then
sealed together under that person's key (``garrison.audit.subject_keys``, AES-256-GCM, the event
id as associated data) into ``sealed``, and the plain columns stay empty. Readers open the
entries they show; once the person is erased their key is gone and an entry reads
``"erased": true`` with those four fields empty, while its hash (over the sealed text) still
verifies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from garrison.audit import subject_keys as keys

if TYPE_CHECKING:
    from garrison.events import Event

PERSONAL_FIELDS = ("ip", "user_agent", "changes", "data")


def subject_of(event: Event) -> str | None:
    if event.target_type == "user" and event.target_id:
        return event.target_id
    record = event.data.get("record") if event.data else None
    if isinstance(record, Mapping) and isinstance(record.get("owner"), str) and record["owner"]:
        return str(record["owner"])
    if event.actor.kind == "user" and event.actor.id:
        return event.actor.id
    return None


async def seal_entry(session: AsyncSession, event: Event, values: dict[str, Any]) -> None:
    """Move the personal fields of ``values`` (an entry about to be inserted) into ``sealed``."""
    subject = subject_of(event)
    if subject is None or len(subject) > 36:
        return
    found = await keys.key_for(session, subject_id=subject, create=True)
    assert found is not None
    personal = {name: values[name] for name in PERSONAL_FIELDS}
    values["sealed"] = keys.seal(*found, personal, aad=event.id)
    values["subject_id"] = subject
    for name in PERSONAL_FIELDS:
        values[name] = None


async def open_rows(session: AsyncSession, rows: Iterable[Any]) -> list[dict[str, Any]]:
    """The rows as dicts with their personal fields back (JSON text, as stored), or marked
    ``erased`` when the key is gone."""
    out = [dict(row._asdict()) if hasattr(row, "_asdict") else dict(row) for row in rows]
    wanted = {kid for r in out if r.get("sealed") and (kid := keys.key_id_of(r["sealed"]))}
    found = await keys.keys_by_id(session, wanted)
    for r in out:
        sealed = r.get("sealed")
        r["erased"] = False
        if not sealed:
            continue
        key = found.get(keys.key_id_of(sealed) or "")
        opened = keys.open_sealed(key, sealed, aad=r["event_id"]) if key else None
        if opened is None:
            r["erased"] = True
            continue
        for name in PERSONAL_FIELDS:
            r[name] = opened.get(name)
    return out


def loads(text: str | None) -> Any:
    return orjson.loads(text) if text else None
