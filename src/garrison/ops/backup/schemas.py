"""What the admin API and ``--json`` print about a backup."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from garrison.ops.backup.manifest import Manifest, Position, Verification


class BackupOut(BaseModel):
    id: str
    engine: str
    method: str
    database: str
    started_at: datetime
    finished_at: datetime
    duration_seconds: float
    size_bytes: int
    plain_bytes: int
    rows: int
    key_id: str
    position: Position
    tables: dict[str, int]
    files: int | None = None  # uploaded files held (None: a backup from before files were taken)
    verification: Verification | None = None

    @classmethod
    def of(cls, item: Manifest, verification: Verification | None = None) -> BackupOut:
        return cls(
            id=item.id,
            engine=item.engine,
            method=item.method,
            database=item.database,
            started_at=item.started_at,
            finished_at=item.finished_at,
            duration_seconds=round(item.duration_seconds, 3),
            size_bytes=item.size,
            plain_bytes=sum(a.plain_size for a in item.artifacts),
            rows=item.rows,
            key_id=item.key_id,
            position=item.position,
            tables=item.tables,
            files=item.files,
            verification=verification,
        )


class BackupList(BaseModel):
    items: list[BackupOut]
