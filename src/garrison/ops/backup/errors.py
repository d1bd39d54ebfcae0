"""Backup errors. Each says in one line what is wrong and why; the CLI prints it and exits
1 (``exit_code``) or 2 for bad usage."""

from __future__ import annotations

from garrison.errors import GarrisonError


class BackupError(GarrisonError):
    status, slug, title = 422, "backup-failed", "Backup Failed"
    exit_code = 1


class BackupNotFound(BackupError):
    slug, title = "backup-not-found", "Backup Not Found"
    status = 404


class ArtifactDamaged(BackupError):
    """Checksum mismatch, truncation, or an artifact that does not decrypt."""

    slug, title = "backup-artifact-damaged", "Backup Artifact Damaged"


class LogGap(BackupError):
    slug, title = "backup-log-gap", "Missing Log Segment"


class OutsideWindow(BackupError):
    slug, title = "backup-outside-window", "Time Outside the Restore Window"
    exit_code = 2


class TargetRefused(BackupError):
    slug, title = "backup-target-refused", "Restore Target Refused"
    exit_code = 2


class ToolMissing(BackupError):
    status, slug, title = 503, "backup-tool-missing", "Backup Tool Missing"
