"""Checking the chain: every sealed entry links to the one before, hashes to what it says,
and the sequence has no holes from the last signed checkpoint (or the start) to the chain
head. Entries not sealed yet (committed since the worker's last pass) are counted, not
checked: they are protected from the moment the worker seals them."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, replace

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from garrison.audit import chain
from garrison.audit.models import GENESIS_HASH, AuditChain, AuditCheckpoint, AuditEntry
from garrison.audit.service import HEAD_ID


@dataclass(frozen=True)
class Broken:
    seq: int
    event_id: str | None
    reason: str


@dataclass(frozen=True)
class VerifyReport:
    checked: int
    first_seq: int
    head_seq: int
    head_hash: str
    broken: Broken | None
    unsealed: int = 0

    @property
    def ok(self) -> bool:
        return self.broken is None


async def verify_chain(
    session: AsyncSession, *, checkpoint_key: bytes, batch_size: int = 1000
) -> VerifyReport:
    report = await _verify(session, checkpoint_key=checkpoint_key, batch_size=batch_size)
    unsealed = (
        await session.execute(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.seq.is_(None))
        )
    ).scalar_one()
    return replace(report, unsealed=int(unsealed))


async def _verify(session: AsyncSession, *, checkpoint_key: bytes, batch_size: int) -> VerifyReport:
    head = (
        await session.execute(
            select(AuditChain.seq, AuditChain.last_hash).where(AuditChain.id == HEAD_ID)
        )
    ).one()
    checkpoint = (
        await session.execute(
            select(AuditCheckpoint).order_by(AuditCheckpoint.through_seq.desc()).limit(1)
        )
    ).scalar_one_or_none()
    expected_seq, expected_prev = 1, GENESIS_HASH
    if checkpoint is not None:
        signature = chain.sign_checkpoint(
            checkpoint_key,
            through_seq=checkpoint.through_seq,
            anchor_hash=checkpoint.anchor_hash,
            purged=checkpoint.purged,
            created_at=checkpoint.created_at,
        )
        if not hmac.compare_digest(signature, checkpoint.signature):
            reason = f"the retention checkpoint through #{checkpoint.through_seq} is not signed"
            return _report(0, checkpoint.through_seq + 1, head, Broken(0, None, reason))
        expected_seq, expected_prev = checkpoint.through_seq + 1, checkpoint.anchor_hash
    first_seq, checked = expected_seq, 0

    while expected_seq <= head.seq:
        rows = (
            await session.execute(
                select(AuditEntry.__table__)
                .where(AuditEntry.seq >= expected_seq, AuditEntry.seq <= head.seq)
                .order_by(AuditEntry.seq)
                .limit(batch_size)
            )
        ).all()
        if not rows:
            break
        for row in rows:
            fields = row._asdict()
            if row.seq != expected_seq:
                reason = f"entry #{expected_seq} is missing (deleted); next present is #{row.seq}"
                return _report(checked, first_seq, head, Broken(expected_seq, None, reason))
            if row.prev_hash != expected_prev:
                reason = "its prev_hash does not match the entry before it"
                return _report(checked, first_seq, head, Broken(row.seq, row.event_id, reason))
            if chain.entry_hash(row.prev_hash, fields) != row.hash:
                reason = "its content does not match its hash (edited)"
                return _report(checked, first_seq, head, Broken(row.seq, row.event_id, reason))
            expected_prev = row.hash
            expected_seq += 1
            checked += 1

    if expected_seq <= head.seq:
        reason = f"entries #{expected_seq}..#{head.seq} are missing (deleted)"
        return _report(checked, first_seq, head, Broken(expected_seq, None, reason))
    if expected_prev != head.last_hash:
        reason = "the chain head does not match the last entry"
        return _report(checked, first_seq, head, Broken(head.seq, None, reason))
    return _report(checked, first_seq, head, None)


def _report(checked: int, first_seq: int, head: object, broken: Broken | None) -> VerifyReport:
    return VerifyReport(
        checked=checked,
        first_seq=first_seq,
        head_seq=int(getattr(head, "seq", 0)),
        head_hash=str(getattr(head, "last_hash", "")),
        broken=broken,
    )
