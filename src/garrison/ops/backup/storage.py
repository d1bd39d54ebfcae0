"""Where artifacts live: a local directory or an S3-compatible bucket, behind one small
synchronous protocol (callers run it in a thread). ``Mirrored`` writes to a primary and a
copy (the specification's second region) and reads from the primary, then the copy."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from garrison.ops.backup.config import BackupSettings
from garrison.ops.backup.errors import BackupError, BackupNotFound


class Storage(Protocol):
    url: str

    def put_file(self, key: str, path: Path) -> None: ...
    def put_bytes(self, key: str, data: bytes) -> None: ...
    def get_file(self, key: str, path: Path) -> None: ...
    def get_bytes(self, key: str) -> bytes: ...
    def keys(self, prefix: str) -> list[tuple[str, int]]: ...
    def delete(self, keys: list[str]) -> None: ...


def _clean(key: str) -> str:
    if key.startswith("/") or ".." in key.split("/"):
        raise ValueError(f"bad storage key {key!r}")
    return key


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root / _clean(key)

    def put_file(self, key: str, path: Path) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        shutil.copyfile(path, partial)
        os.replace(partial, target)

    def put_bytes(self, key: str, data: bytes) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        partial.write_bytes(data)
        os.replace(partial, target)

    def get_file(self, key: str, path: Path) -> None:
        try:
            shutil.copyfile(self._path(key), path)
        except (FileNotFoundError, NotADirectoryError):
            raise BackupNotFound(f"{key} is not in {self.url}") from None

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            raise BackupNotFound(f"{key} is not in {self.url}") from None

    def keys(self, prefix: str) -> list[tuple[str, int]]:
        base = self.root / _clean(prefix) if prefix else self.root
        if not base.exists():
            return []
        found = []
        for path in base.rglob("*"):
            if path.is_file() and not path.name.endswith(".partial"):
                found.append((path.relative_to(self.root).as_posix(), path.stat().st_size))
        return sorted(found)

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            with contextlib.suppress(FileNotFoundError):
                self._path(key).unlink()


class S3Storage:
    def __init__(self, url: str, settings: BackupSettings) -> None:
        import boto3
        from botocore.config import Config

        parsed = urlparse(url)
        self.url = url
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        secret = settings.s3_secret_access_key
        self.client: Any = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=secret.get_secret_value() if secret else None,
            config=Config(
                retries={"max_attempts": 3, "mode": "standard"},
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def _key(self, key: str) -> str:
        key = _clean(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_file(self, key: str, path: Path) -> None:
        self.client.upload_file(str(path), self.bucket, self._key(key))

    def put_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def get_file(self, key: str, path: Path) -> None:
        try:
            self.client.download_file(self.bucket, self._key(key), str(path))
        except Exception as exc:
            if _missing(exc):
                raise BackupNotFound(f"{key} is not in {self.url}") from None
            raise

    def get_bytes(self, key: str) -> bytes:
        try:
            body: bytes = self.client.get_object(Bucket=self.bucket, Key=self._key(key))[
                "Body"
            ].read()
            return body
        except Exception as exc:
            if _missing(exc):
                raise BackupNotFound(f"{key} is not in {self.url}") from None
            raise

    def keys(self, prefix: str) -> list[tuple[str, int]]:
        full = self._key(prefix) if prefix else (self.prefix + "/" if self.prefix else "")
        strip = len(self.prefix) + 1 if self.prefix else 0
        found: list[tuple[str, int]] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
            for item in page.get("Contents", []):
                found.append((item["Key"][strip:], int(item["Size"])))
        return sorted(found)

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": self._key(key)} for key in keys[start : start + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch})


def _missing(exc: Exception) -> bool:
    response: Any = getattr(exc, "response", None)
    code = str((response or {}).get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


class Mirrored:
    """Writes go to both locations; reads come from the primary, else the copy."""

    def __init__(self, primary: Storage, copy: Storage) -> None:
        self.primary = primary
        self.copy = copy
        self.url = primary.url

    def put_file(self, key: str, path: Path) -> None:
        self.primary.put_file(key, path)
        self.copy.put_file(key, path)

    def put_bytes(self, key: str, data: bytes) -> None:
        self.primary.put_bytes(key, data)
        self.copy.put_bytes(key, data)

    def get_file(self, key: str, path: Path) -> None:
        try:
            self.primary.get_file(key, path)
        except BackupNotFound:
            self.copy.get_file(key, path)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.primary.get_bytes(key)
        except BackupNotFound:
            return self.copy.get_bytes(key)

    def keys(self, prefix: str) -> list[tuple[str, int]]:
        return self.primary.keys(prefix)

    def delete(self, keys: list[str]) -> None:
        self.primary.delete(keys)
        self.copy.delete(keys)


def open_one(url: str, settings: BackupSettings) -> Storage:
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise BackupError(f"{url!r} names no bucket (s3://bucket/prefix)")
        return S3Storage(url, settings)
    if parsed.scheme in ("file", ""):
        return LocalStorage(Path(parsed.path if parsed.scheme else url).resolve())
    raise BackupError(f"unsupported storage URL {url!r}: use file:///dir or s3://bucket/prefix")


def open_storage(settings: BackupSettings, data_dir: Path) -> Storage:
    primary = open_one(settings.storage_url or (data_dir / "backups").resolve().as_uri(), settings)
    if settings.copy_url:
        return Mirrored(primary, open_one(settings.copy_url, settings))
    return primary
