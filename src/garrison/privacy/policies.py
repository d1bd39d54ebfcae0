"""Per-collection privacy policies: erasure (delete, anonymize, retain with a legal basis)
and retention (``{field, days}``). A collection without a policy has its owners' records
deleted on erasure and no retention."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from garrison.db.types import utcnow
from garrison.errors import NotFound
from garrison.events import Actor, Event, emit
from garrison.privacy.models import PrivacyPolicy
from garrison.privacy.schemas import PolicyIn
from garrison.records import owned
from garrison.records.registry import get_collection

DEFAULT = PolicyIn()


async def set_policy(
    session: AsyncSession, *, collection: str, body: PolicyIn, actor: Actor
) -> PrivacyPolicy:
    found = await get_collection(session, name=collection)  # 404 for an unknown collection
    owned.check_fields(found, body.erasure.fields, "#/erasure/fields")
    if body.retention is not None:
        owned.time_column(found, body.retention.field)
    values: dict[str, Any] = body.model_dump(mode="json")
    row = await session.get(PrivacyPolicy, collection)
    before = None if row is None else {"erasure": row.erasure, "retention": row.retention}
    if row is None:
        row = PrivacyPolicy(collection=collection, updated_at=utcnow(), **values)
        session.add(row)
    else:
        row.erasure, row.retention, row.updated_at = (
            values["erasure"],
            values["retention"],
            utcnow(),
        )
    await session.flush()
    await emit(
        session,
        Event(
            action="privacy.policy.updated",
            actor=actor,
            target_type="collection",
            target_id=collection,
            changes={"policy": (before, values)},
        ),
    )
    return row


async def get_policy(session: AsyncSession, *, collection: str) -> PrivacyPolicy:
    row = await session.get(PrivacyPolicy, collection)
    if row is None:
        raise NotFound(f"no privacy policy for {collection!r}")
    return row


async def policies(session: AsyncSession) -> dict[str, PolicyIn]:
    rows = await session.scalars(select(PrivacyPolicy))
    return {
        row.collection: PolicyIn.model_validate(
            {"erasure": row.erasure, "retention": row.retention}
        )
        for row in rows
    }


async def list_policies(session: AsyncSession) -> list[PrivacyPolicy]:
    return list(
        (await session.scalars(select(PrivacyPolicy).order_by(PrivacyPolicy.collection))).all()
    )
