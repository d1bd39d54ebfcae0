"""Envelope encryption for data at rest: secrets in rows, and streams (backup artifacts).

Every key is derived from a master secret (``GARRISON_SECRET_KEY``; older ones stay readable
through ``GARRISON_PREVIOUS_SECRET_KEYS``) with HKDF-SHA256, one key per *purpose*
(``"webhooks.secret"``, ``"backup"``, …), so a key leaked for one use opens nothing else.
Each master key has a short public id; it is stored with every ciphertext, so a new master
key can be introduced while old ciphertexts are still read, and ``needs_rewrap`` tells a
rotation job which values to re-encrypt.

Small values (``seal``/``open``) are AES-256-GCM with a random 96-bit nonce, as text:

    gv1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>

The purpose and an optional ``context`` (the row's id, say) are authenticated as associated
data: a ciphertext copied into another row or another purpose does not decrypt.

Streams (``encrypt_stream``/``decrypt_stream``) use the STREAM construction: the input is
cut into chunks, each sealed with AES-256-GCM under a nonce made of a random per-stream
prefix, the chunk counter and a last-chunk flag. Reordering, dropping or appending chunks
and truncating the stream are all detected; memory stays at one chunk whatever the size.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from garrison.errors import GarrisonError
from garrison.settings import Settings

__all__ = [
    "CHUNK_SIZE",
    "DecryptionFailed",
    "Keyring",
    "UnknownKey",
    "keyring_for",
]

_PREFIX = "gv1"
_STREAM_MAGIC = b"GSTREAM1"
_NONCE_PREFIX_BYTES = 7  # + 4-byte counter + 1-byte last flag = 12
CHUNK_SIZE = 64 * 1024
_MAX_CHUNK = 16 * 1024 * 1024  # refuse absurd lengths in a corrupt stream before allocating


class DecryptionFailed(GarrisonError):
    """A ciphertext was altered, truncated, moved to another context, or is not ours."""

    slug, title = "decryption-failed", "Decryption Failed"


class UnknownKey(DecryptionFailed):
    """The ciphertext names a master key this process does not hold."""

    slug, title = "unknown-key", "Unknown Encryption Key"


def keyring_for(settings: Settings) -> Keyring:
    """The installation's keyring: ``secret_key`` encrypts, it and the previous ones decrypt."""
    if settings.secret_key is None:  # load_settings always sets it
        raise ValueError("settings have no secret_key")
    return Keyring(
        settings.secret_key.get_secret_value(),
        [key.get_secret_value() for key in settings.previous_secret_keys],
    )


def key_id(master: bytes) -> str:
    """The public id of a master key: 8 hex digits, safe to store and to print."""
    return _hkdf(master, b"garrison key id", 4).hex()


def _hkdf(master: bytes, info: bytes, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(master)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class _Master:
    id: str
    secret: bytes


class Keyring:
    """The master keys of this installation: the current one encrypts, every one decrypts."""

    def __init__(self, current: str | bytes, previous: Sequence[str | bytes] = ()) -> None:
        def master(value: str | bytes) -> _Master:
            raw = value.encode() if isinstance(value, str) else value
            if not raw:
                raise ValueError("a master key must not be empty")
            return _Master(key_id(raw), raw)

        self._current = master(current)
        self._masters: dict[str, _Master] = {self._current.id: self._current}
        for value in previous:
            entry = master(value)
            self._masters.setdefault(entry.id, entry)
        self._derived: dict[tuple[str, str], bytes] = {}

    @classmethod
    def from_secrets(cls, current: str, previous: Iterable[str] = ()) -> Keyring:
        return cls(current, list(previous))

    @property
    def current_id(self) -> str:
        return self._current.id

    @property
    def key_ids(self) -> Mapping[str, None]:
        return dict.fromkeys(self._masters)

    def derive(self, purpose: str, kid: str | None = None) -> tuple[str, bytes]:
        """The 256-bit key for ``purpose`` under master ``kid`` (default: the current one)."""
        kid = kid or self._current.id
        cached = self._derived.get((kid, purpose))
        if cached is None:
            entry = self._masters.get(kid)
            if entry is None:
                raise UnknownKey(f"no master key with id {kid!r} is configured")
            cached = _hkdf(entry.secret, b"garrison/" + purpose.encode())
            self._derived[(kid, purpose)] = cached
        return kid, cached

    # -- small values -------------------------------------------------------------------

    def seal(self, plaintext: bytes | str, *, purpose: str, context: str = "") -> str:
        """Encrypt a small value; the result is ASCII text, about 4/3 of the input + 50."""
        data = plaintext.encode() if isinstance(plaintext, str) else plaintext
        kid, key = self.derive(purpose)
        nonce = os.urandom(12)
        sealed = AESGCM(key).encrypt(nonce, data, _aad(purpose, context))
        return f"{_PREFIX}.{kid}.{_b64(nonce + sealed)}"

    def open(self, token: str, *, purpose: str, context: str = "") -> bytes:
        """Decrypt what ``seal`` made; ``DecryptionFailed`` on any mismatch or damage."""
        kid, blob = _split(token)
        _, key = self.derive(purpose, kid)
        if len(blob) < 12 + 16:
            raise DecryptionFailed("the ciphertext is truncated")
        try:
            return AESGCM(key).decrypt(blob[:12], blob[12:], _aad(purpose, context))
        except InvalidTag:
            raise DecryptionFailed("the ciphertext does not authenticate") from None

    def open_text(self, token: str, *, purpose: str, context: str = "") -> str:
        return self.open(token, purpose=purpose, context=context).decode()

    def needs_rewrap(self, token: str) -> bool:
        """True when ``token`` is sealed under a master key other than the current one."""
        return _split(token)[0] != self._current.id

    def rewrap(self, token: str, *, purpose: str, context: str = "") -> str:
        """Re-encrypt under the current master key (for ``garrison secrets rotate``)."""
        return self.seal(
            self.open(token, purpose=purpose, context=context), purpose=purpose, context=context
        )

    # -- streams ------------------------------------------------------------------------

    def encrypt_stream(
        self, chunks: Iterable[bytes], *, purpose: str, chunk_size: int = CHUNK_SIZE
    ) -> Iterator[bytes]:
        """Yield the encrypted form of the concatenated ``chunks``: a header, then records."""
        kid, key = self.derive(purpose)
        aead = AESGCM(key)
        prefix = os.urandom(_NONCE_PREFIX_BYTES)
        kid_bytes = kid.encode("ascii")
        header = _STREAM_MAGIC + bytes([len(kid_bytes)]) + kid_bytes + prefix
        yield header
        aad = _aad(purpose, "") + header
        counter = 0
        pending = b""
        for chunk in _rechunk(chunks, chunk_size):
            if pending:
                yield _record(aead, prefix, counter, last=False, data=pending, aad=aad)
                counter += 1
            pending = chunk
        yield _record(aead, prefix, counter, last=True, data=pending, aad=aad)

    def decrypt_stream(self, data: Iterable[bytes], *, purpose: str) -> Iterator[bytes]:
        """Yield the plaintext of an ``encrypt_stream`` output; raises ``DecryptionFailed``
        on a wrong key, a damaged, reordered or truncated stream, or trailing bytes."""
        reader = _Reader(iter(data))
        magic = reader.take(len(_STREAM_MAGIC))
        if magic != _STREAM_MAGIC:
            raise DecryptionFailed("not a Garrison encrypted stream (bad header)")
        kid_len = reader.take(1)[0]
        kid_bytes = reader.take(kid_len)
        prefix = reader.take(_NONCE_PREFIX_BYTES)
        header = magic + bytes([kid_len]) + kid_bytes + prefix
        _, key = self.derive(purpose, kid_bytes.decode("ascii", "replace"))
        aead = AESGCM(key)
        aad = _aad(purpose, "") + header
        counter = 0
        while True:
            length_bytes = reader.take(4, allow_eof=True)
            if not length_bytes:
                raise DecryptionFailed("the stream is truncated (no final chunk)")
            (length,) = struct.unpack(">I", length_bytes)
            if length < 16 or length > _MAX_CHUNK + 16:
                raise DecryptionFailed("the stream is damaged (bad chunk length)")
            sealed = reader.take(length)
            plain, last = _open_record(aead, prefix, counter, sealed, aad)
            if plain:
                yield plain
            if last:
                if reader.take(1, allow_eof=True):
                    raise DecryptionFailed("the stream has bytes after its final chunk")
                return
            counter += 1


def _aad(purpose: str, context: str) -> bytes:
    return hashlib.sha256(f"{purpose}\x00{context}".encode()).digest()


def _split(token: str) -> tuple[str, bytes]:
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != _PREFIX or not parts[1]:
        raise DecryptionFailed("not a Garrison ciphertext")
    try:
        return parts[1], _unb64(parts[2])
    except ValueError:
        raise DecryptionFailed("the ciphertext is not valid base64") from None


def _nonce(prefix: bytes, counter: int, *, last: bool) -> bytes:
    if counter >= 2**32:
        raise ValueError("stream too long for one nonce prefix")
    return prefix + struct.pack(">I", counter) + (b"\x01" if last else b"\x00")


def _record(
    aead: AESGCM, prefix: bytes, counter: int, *, last: bool, data: bytes, aad: bytes
) -> bytes:
    sealed = aead.encrypt(_nonce(prefix, counter, last=last), data, aad)
    return struct.pack(">I", len(sealed)) + sealed


def _open_record(
    aead: AESGCM, prefix: bytes, counter: int, sealed: bytes, aad: bytes
) -> tuple[bytes, bool]:
    for last in (False, True):
        try:
            return aead.decrypt(_nonce(prefix, counter, last=last), sealed, aad), last
        except InvalidTag:
            continue
    raise DecryptionFailed("the stream does not authenticate (wrong key or damaged chunk)")


def _rechunk(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


class _Reader:
    def __init__(self, source: Iterator[bytes]) -> None:
        self._source = source
        self._buffer = bytearray()

    def take(self, n: int, *, allow_eof: bool = False) -> bytes:
        while len(self._buffer) < n:
            try:
                self._buffer += next(self._source)
            except StopIteration:
                if allow_eof and not self._buffer:
                    return b""
                raise DecryptionFailed("the stream is truncated") from None
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        return out
