"""Backup errors. Each says in one line what is wrong and why; the CLI prints it and exits
1 (``exit_code``) or 2 for bad usage."""

from __future__ import annotations

from garrison.errors import GarrisonError


class BackupError(GarrisonError):
    """A backup command could not do what it was asked (the base of the backup errors)."""

    status, slug, title = 422, "backup-failed", "Backup Failed"
    exit_code = 1


class BackupNotFound(BackupError):
    """No backup has that id."""

    slug, title = "backup-not-found", "Backup Not Found"
    status = 404


class ArtifactDamaged(BackupError):
    """Checksum mismatch, truncation, or an artifact that does not decrypt."""

    slug, title = "backup-artifact-damaged", "Backup Artifact Damaged"


class LogGap(BackupError):
    """The archived transaction logs have a gap: no restore can cross it."""

    slug, title = "backup-log-gap", "Missing Log Segment"


class OutsideWindow(BackupError):
    """The restore point is outside the window the backups and logs cover."""

    slug, title = "backup-outside-window", "Time Outside the Restore Window"
    exit_code = 2


class TargetRefused(BackupError):
    """The restore target is the live database or not empty (without --yes)."""

    slug, title = "backup-target-refused", "Restore Target Refused"
    exit_code = 2


class ToolMissing(BackupError):
    """A database tool the backup needs (mariadb-dump, mariadb-binlog, litestream) is missing."""

    status, slug, title = 503, "backup-tool-missing", "Backup Tool Missing"
