"""What the audit API returns."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
from pydantic import BaseModel, Field

from garrison.types import canonical_time


class ActorOut(BaseModel):
    kind: str
    id: str | None


class TargetOut(BaseModel):
    type: str | None
    id: str | None


class AuditEntryOut(BaseModel):
    id: int = Field(description="insertion order")
    seq: int | None = Field(description="position in the hash chain; null until sealed")
    event_id: str
    occurred_at: datetime
    actor: ActorOut
    ip: str | None
    user_agent: str | None
    request_id: str | None
    action: str
    target: TargetOut
    outcome: str
    changes: dict[str, Any] | None = Field(description="{field: {before, after}}, redacted")
    data: dict[str, Any] | None
    erased: bool = Field(
        default=False, description="the person it was about was erased: personal fields gone"
    )
    prev_hash: str | None
    hash: str | None


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


def entry_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    """An opened row (``audit.personal.open_rows``) as the API's JSON object (also each
    line of the NDJSON export)."""
    return {
        "id": row["id"],
        "seq": row["seq"],
        "event_id": row["event_id"],
        "occurred_at": canonical_time(row["occurred_at"]),
        "actor": {"kind": row["actor_kind"], "id": row["actor_id"]},
        "ip": row["ip"],
        "user_agent": row["user_agent"],
        "request_id": row["request_id"],
        "action": row["action"],
        "target": {"type": row["target_type"], "id": row["target_id"]},
        "outcome": row["outcome"],
        "changes": orjson.loads(row["changes"]) if row["changes"] else None,
        "data": orjson.loads(row["data"]) if row["data"] else None,
        "erased": bool(row.get("erased")),
        "prev_hash": row["prev_hash"],
        "hash": row["hash"],
    }
