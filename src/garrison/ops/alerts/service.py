"""Opening, resolving and silencing alerts. Never commits (the caller's transaction does);
``alert.opened`` and ``alert.resolved`` events go out in that same transaction, and the
outbox handler mails the operators."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from garrison.db.types import utcnow
from garrison.errors import ValidationFailed
from garrison.events import Actor, Event, emit
from garrison.ops.alerts.models import Alert, AlertSilence
from garrison.ops.alerts.rules import RULES, Finding


def _check_rule(rule: str) -> None:
    if rule not in RULES:
        raise ValidationFailed(
            "unknown rule",
            errors=[{"parameter": "rule", "detail": f"one of: {', '.join(RULES)}"}],
        )


def _data(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "rule": alert.rule,
        "subject": alert.subject,
        "summary": alert.summary,
        "value": alert.value,
        "threshold": alert.threshold,
        "opened_at": alert.opened_at.isoformat(),
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
    }


async def list_alerts(session: AsyncSession, *, limit: int) -> Sequence[Alert]:
    rows = await session.scalars(
        select(Alert).order_by(Alert.resolved_at.is_not(None), Alert.opened_at.desc()).limit(limit)
    )
    return rows.all()


async def open_alerts(session: AsyncSession) -> Sequence[Alert]:
    return (await session.scalars(select(Alert).where(Alert.resolved_at.is_(None)))).all()


async def silence(
    session: AsyncSession, *, rule: str, minutes: float, reason: str, actor: Actor
) -> None:
    _check_rule(rule)
    now = utcnow()
    row = await session.get(AlertSilence, rule)
    if row is None:
        row = AlertSilence(rule=rule, created_at=now)
        session.add(row)
    row.until = now + timedelta(minutes=minutes)
    row.reason = reason
    await session.flush()
    await emit(
        session,
        Event(
            action="alert.silenced",
            actor=actor,
            target_type="alert_rule",
            target_id=rule,
            data={"until": row.until.isoformat()},
        ),
    )


async def unsilence(session: AsyncSession, *, rule: str, actor: Actor) -> None:
    _check_rule(rule)
    await session.execute(delete(AlertSilence).where(AlertSilence.rule == rule))
    await emit(
        session,
        Event(action="alert.unsilenced", actor=actor, target_type="alert_rule", target_id=rule),
    )


async def apply(
    session: AsyncSession,
    *,
    findings: Sequence[Finding],
    suppress_minutes: dict[str, float],
    default_suppress: float,
    now: datetime | None = None,
) -> tuple[list[Alert], list[Alert]]:
    """Open an alert for each firing finding without one (unless its rule is silenced or
    the same alert resolved within its suppression window); resolve each open alert whose
    rule was evaluated and whose subject no longer fires. Returns (opened, resolved)."""
    moment = now or utcnow()
    firing = {(f.rule, f.subject): f for f in findings if f.firing}
    evaluated = {f.rule for f in findings}
    silenced = set(
        (await session.scalars(select(AlertSilence.rule).where(AlertSilence.until > moment))).all()
    )
    opened: list[Alert] = []
    resolved: list[Alert] = []
    current = {(a.rule, a.subject): a for a in await open_alerts(session)}
    for key, alert in current.items():
        if alert.rule in evaluated and key not in firing:
            alert.resolved_at = moment
            alert.open_key = None
            resolved.append(alert)
    for key, finding in firing.items():
        if key in current or finding.rule in silenced:
            if key in current:  # keep the summary current (the value moves)
                current[key].summary = finding.summary[:500]
                current[key].value = finding.value
            continue
        window = suppress_minutes.get(finding.rule, default_suppress)
        recent = await session.scalar(
            select(Alert.id)
            .where(
                Alert.rule == finding.rule,
                Alert.subject == finding.subject[:191],
                Alert.resolved_at > moment - timedelta(minutes=window),
            )
            .limit(1)
        )
        if recent is not None:
            continue
        alert = Alert(
            rule=finding.rule,
            subject=finding.subject[:191],
            open_key=f"{finding.rule}|{finding.subject}"[:255],
            summary=finding.summary[:500],
            value=finding.value,
            threshold=finding.threshold,
            opened_at=moment,
        )
        session.add(alert)
        opened.append(alert)
    await session.flush()
    for alert in opened:
        await emit(
            session,
            Event(
                action="alert.opened",
                actor=Actor.system(),
                target_type="alert",
                target_id=str(alert.id),
                data=_data(alert),
            ),
        )
    for alert in resolved:
        await emit(
            session,
            Event(
                action="alert.resolved",
                actor=Actor.system(),
                target_type="alert",
                target_id=str(alert.id),
                data=_data(alert),
            ),
        )
    return opened, resolved
