"""One artifact on its way to storage and back: plaintext chunks -> zstd -> AES-256-GCM
STREAM (``garrison.crypto``, purpose ``backup``, the key id in its header) -> a file whose
SHA-256 goes into the manifest. Opening checks the checksum first, then decrypts and
decompresses in full to a local file, so a damaged artifact or a wrong key is found before
anything is written to a restore target."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import zstandard

from garrison.crypto import DecryptionFailed, Keyring, UnknownKey
from garrison.ops.backup.errors import ArtifactDamaged

PURPOSE = "backup"
_READ = 1024 * 1024


@dataclass(frozen=True)
class Sealed:
    size: int  # bytes stored
    sha256: str  # of the stored bytes
    plain_size: int


def read_chunks(path: Path, size: int = _READ) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(size):
            yield chunk


# One thread, in the caller's: a backup must leave the cores to the database's writers.
def _compress(chunks: Iterable[bytes], counter: list[int]) -> Iterator[bytes]:
    compressor = zstandard.ZstdCompressor(level=3, threads=0).compressobj()
    for chunk in chunks:
        counter[0] += len(chunk)
        out = compressor.compress(chunk)
        if out:
            yield out
    yield compressor.flush()


def seal(chunks: Iterable[bytes], keyring: Keyring, out: Path) -> Sealed:
    """Compress and encrypt ``chunks`` into ``out``."""
    digest = hashlib.sha256()
    counter = [0]
    size = 0
    with out.open("wb") as handle:
        for piece in keyring.encrypt_stream(_compress(chunks, counter), purpose=PURPOSE):
            digest.update(piece)
            size += len(piece)
            handle.write(piece)
    return Sealed(size=size, sha256=digest.hexdigest(), plain_size=counter[0])


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    for chunk in read_chunks(path):
        digest.update(chunk)
    return digest.hexdigest()


def check(path: Path, *, sha256: str, size: int, name: str) -> None:
    actual = path.stat().st_size
    if actual != size:
        raise ArtifactDamaged(
            f"{name} is {'truncated' if actual < size else 'too long'}: "
            f"{actual} bytes, the manifest says {size}"
        )
    if sha256_of(path) != sha256:
        raise ArtifactDamaged(f"{name} is corrupt: its SHA-256 does not match the manifest")


def open_to(path: Path, keyring: Keyring, out: Path, *, name: str) -> int:
    """Decrypt and decompress the artifact at ``path`` into ``out``; the plaintext size."""
    decompressor = zstandard.ZstdDecompressor().decompressobj()
    total = 0
    try:
        with out.open("wb") as handle:
            for chunk in keyring.decrypt_stream(read_chunks(path), purpose=PURPOSE):
                plain = decompressor.decompress(chunk)
                total += len(plain)
                handle.write(plain)
        if not decompressor.eof:
            raise ArtifactDamaged(f"{name} is truncated (the compressed stream does not end)")
    except UnknownKey as exc:
        out.unlink(missing_ok=True)
        raise ArtifactDamaged(
            f"{name} was encrypted with a key this installation does not hold ({exc.detail}); "
            "set GARRISON_SECRET_KEY or GARRISON_PREVIOUS_SECRET_KEYS"
        ) from None
    except DecryptionFailed as exc:
        out.unlink(missing_ok=True)
        raise ArtifactDamaged(f"{name} does not decrypt: {exc.detail}") from None
    except zstandard.ZstdError as exc:
        out.unlink(missing_ok=True)
        raise ArtifactDamaged(f"{name} does not decompress: {exc}") from None
    return total
