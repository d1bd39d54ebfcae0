"""Uploaded files in backups: every object of the files storage, as one tar archive sealed
like the database artifact (zstd, AES-256-GCM stream, SHA-256 in the manifest). The local
backend's directory is archived as it is; objects on S3-compatible storage are fetched one by
one into the spool (a tar header needs the size) and archived under their keys, so both
archives have the local backend's layout. A restore writes the files into a directory the
operator names (``--files-to``), never over a directory that holds anything: point the local
backend at it, or copy it into a bucket (``aws s3 sync DIR s3://bucket/prefix``).
"""

from __future__ import annotations

import asyncio
import tarfile
from pathlib import Path

from garrison.ops.backup.errors import ArtifactDamaged, TargetRefused
from garrison.ops.backup.storage import _missing
from garrison.settings import Settings

KEY = "files.tar.zst.enc"
PREFIXES = ("files", "thumbs")  # every key the files feature writes starts with one of these


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


def pack_storage(settings: Settings, out: Path, spool: Path) -> int:
    """Every object of the (S3) files storage into the tar archive ``out``; their count. An
    object deleted between the listing and its download (the sweeper) is left out."""
    return asyncio.run(_pack_storage(settings, out, spool))


async def _pack_storage(settings: Settings, out: Path, spool: Path) -> int:
    from garrison.files.storage import open_primary

    storage = open_primary(settings)
    part = spool / "object"
    count = 0
    try:
        with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as archive:
            for prefix in PREFIXES:
                async for key, _modified in storage.list(prefix):
                    try:
                        with part.open("wb") as handle:
                            async for chunk in storage.read(key):
                                handle.write(chunk)
                    except Exception as exc:
                        if _missing(exc):
                            continue
                        raise
                    archive.add(part, arcname=key, recursive=False)
                    count += 1
    finally:
        part.unlink(missing_ok=True)
        await storage.close()
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
