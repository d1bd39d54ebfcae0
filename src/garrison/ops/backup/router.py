"""``/api/v1/backups``: list, show, create and verify backups (``backups:manage``).
Restores stay on the command line: they need a target and a human's ``--yes``."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter

from garrison.auth.deps import require
from garrison.auth.principal import Principal
from garrison.deps import SettingsDep
from garrison.ops.backup import service
from garrison.ops.backup.errors import BackupError, BackupNotFound
from garrison.ops.backup.manifest import Verification
from garrison.ops.backup.schemas import BackupList, BackupOut

# An id is the form ``manifest.new_id`` makes (``20261201T030000Z-1a2b``); any other text
# names no backup (404) and never reaches a storage key.
_ID = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{4}$")


def _checked(backup_id: str) -> str:
    if not _ID.fullmatch(backup_id):
        raise BackupNotFound(f"no backup {backup_id[:40]!r}")
    return backup_id


router = APIRouter(prefix="/api/v1/backups", tags=["backups"])
BACKUPS_PERMISSION = "backups:manage"
BackupAdmin = Annotated[Principal, require(BACKUPS_PERMISSION)]


@router.get("", summary="Every finished full backup, oldest first")
async def list_backups(_: BackupAdmin, settings: SettingsDep) -> BackupList:
    items = await service.list_backups(settings=settings)
    return BackupList(items=[BackupOut.of(item) for item in items])


@router.get("/{backup_id}", summary="One backup's manifest and last verification")
async def show_backup(backup_id: str, _: BackupAdmin, settings: SettingsDep) -> BackupOut:
    found, verification = await service.get_backup(settings=settings, backup_id=_checked(backup_id))
    return BackupOut.of(found, verification)


@router.post("", status_code=201, summary="Take a full backup now")
async def create_backup(_: BackupAdmin, settings: SettingsDep) -> BackupOut:
    try:
        made = await service.create_backup(settings=settings)
    except BackupError as exc:
        await service.report_failure(settings=settings, operation="create", error=exc)
        raise
    return BackupOut.of(made)


@router.post("/{backup_id}/verify", summary="Restore into a scratch database and check it")
async def verify_backup(backup_id: str, _: BackupAdmin, settings: SettingsDep) -> Verification:
    result = await service.verify_backup(settings=settings, backup_id=_checked(backup_id))
    if not result.ok:
        await service.report_failure(
            settings=settings, operation="verify", error=BackupError(result.detail)
        )
    return result
