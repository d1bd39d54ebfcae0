"""The catalogue lives in storage beside the artifacts, not in the database being backed
up: ``full/<id>/manifest.json`` for each full backup (what was taken, where the logs
continue from, the checksums, the row counts) and ``full/<id>/verification.json`` for the
last verified restore. A restore after losing the database needs only the bucket and key."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from garrison.ops.backup.errors import ArtifactDamaged, BackupNotFound
from garrison.ops.backup.storage import Storage

Engine = Literal["mariadb", "sqlite"]
MANIFEST = "manifest.json"
VERIFICATION = "verification.json"


class Artifact(BaseModel):
    key: str
    size: int
    sha256: str
    plain_size: int


class Position(BaseModel):
    """Where the transaction log continues after this backup."""

    binlog_file: str | None = None
    binlog_pos: int | None = None
    gtid: str | None = None


class Verification(BaseModel):
    ok: bool
    verified_at: datetime
    restore_seconds: float
    detail: str
    tables_checked: int = 0
    audit_entries_checked: int = 0


class Manifest(BaseModel):
    id: str
    engine: Engine
    method: str
    database: str
    started_at: datetime
    finished_at: datetime
    key_id: str
    artifacts: list[Artifact]
    tables: dict[str, int] = Field(default_factory=dict)
    position: Position = Field(default_factory=Position)
    # Uploaded files in the backup (local directory or S3 objects): how many; None when
    # the backup holds none (a backup from before files were taken).
    files: int | None = None
    version: int = 1

    @property
    def size(self) -> int:
        return sum(a.size for a in self.artifacts)

    @property
    def duration_seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def rows(self) -> int:
        return sum(self.tables.values())


def new_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"


def prefix(backup_id: str) -> str:
    return f"full/{backup_id}/"


def save(storage: Storage, manifest: Manifest) -> None:
    # Written last: a backup without a manifest is unfinished and never listed.
    storage.put_bytes(prefix(manifest.id) + MANIFEST, manifest.model_dump_json(indent=2).encode())


def load(storage: Storage, backup_id: str) -> Manifest:
    if "/" in backup_id or backup_id.startswith("."):
        raise BackupNotFound(f"no backup {backup_id!r}")
    try:
        raw = storage.get_bytes(prefix(backup_id) + MANIFEST)
    except BackupNotFound:
        raise BackupNotFound(f"no backup {backup_id!r} in {storage.url}") from None
    try:
        return Manifest.model_validate_json(raw)
    except ValidationError:
        raise ArtifactDamaged(f"the manifest of backup {backup_id} is damaged") from None


def list_all(storage: Storage) -> list[Manifest]:
    """Every finished backup, oldest first."""
    found = []
    for key, _size in storage.keys("full/"):
        parts = key.split("/")
        if len(parts) == 3 and parts[2] == MANIFEST:
            try:
                found.append(load(storage, parts[1]))
            except ArtifactDamaged:
                continue
    return sorted(found, key=lambda m: m.started_at)


def save_verification(storage: Storage, backup_id: str, result: Verification) -> None:
    storage.put_bytes(prefix(backup_id) + VERIFICATION, result.model_dump_json(indent=2).encode())


def load_verification(storage: Storage, backup_id: str) -> Verification | None:
    try:
        return Verification.model_validate_json(storage.get_bytes(prefix(backup_id) + VERIFICATION))
    except (BackupNotFound, ValidationError):
        return None
