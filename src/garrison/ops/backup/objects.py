"""Uploaded files in backups: the local file backend's directory, as one tar archive
sealed like the database artifact (zstd, AES-256-GCM stream, SHA-256 in the manifest).

Objects on S3-compatible storage are not copied into the backup: a bucket is made durable by
the files feature's replication to a second bucket or region, and by the storage's own
versioning. A restore writes the files into a directory the operator names (``--files-to``),
never over a directory that holds anything.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

from garrison.ops.backup.errors import ArtifactDamaged, TargetRefused

KEY = "files.tar.zst.enc"


def pack(root: Path, out: Path) -> int:
    """Write every regular file under ``root`` into the tar archive ``out``; their count.
    Files written meanwhile may or may not be in it: a file's row commits only after its
    object is stored, so every row of the database snapshot taken before has its object."""
    count = 0
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as archive:
        for path in sorted(root.rglob("*")) if root.is_dir() else []:
            if path.is_file() and not path.is_symlink():
                archive.add(path, arcname=str(path.relative_to(root)), recursive=False)
                count += 1
    return count


def count(archive_path: Path, *, name: str) -> int:
    """How many files the archive holds (reading it through: a damaged one fails)."""
    try:
        with tarfile.open(archive_path, "r") as archive:
            return sum(1 for member in archive if member.isfile())
    except tarfile.TarError as exc:
        raise ArtifactDamaged(f"{name} is not a readable archive: {exc}") from None


def check_target(target: Path) -> None:
    """Files are restored only into a directory that is absent or empty."""
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise TargetRefused(f"--files-to {target} is not an empty directory")


def unpack(archive_path: Path, target: Path, *, name: str) -> int:
    """Extract the archive into ``target`` (absent or empty); the number of files. Names
    are checked by tarfile's ``data`` filter: nothing lands outside ``target``."""
    check_target(target)
    target.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive_path, "r") as archive:
            archive.extractall(target, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise ArtifactDamaged(f"{name} could not be extracted: {exc}") from None
    return sum(1 for path in target.rglob("*") if path.is_file())
