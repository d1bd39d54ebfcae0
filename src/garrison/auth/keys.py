"""Signing keys (Ed25519), sealed at rest, published as a JWKS.

JOSE names (RFC 9864): tokens are signed under the fully-specified identifier ``Ed25519``
and the JWKS publishes it; the deprecated polymorphic ``EdDSA`` is still accepted from keys
created before the change (``LEGACY_ALGORITHM`` in their stored ``alg``), so tokens signed
before an upgrade keep working until they expire. Either name means the same Ed25519
signature here: the key type is pinned (OKP, Ed25519), never read from the token.

Lifecycle of a key: created → published at once → signs from ``signs_from`` (creation plus
``auth.key_activation_delay`` on rotation, so every verifier has fetched it before the first
token it signs arrives) → retired when a newer key starts signing → unpublished once the
last token it signed has expired (``published_until``).

Private keys are sealed with AES-256-GCM under a key derived (HKDF-SHA256) from the master
secret; the kid is the associated data, so a sealed key cannot be moved to another row.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from garrison.auth.clock import aware, utcnow
from garrison.auth.models import SigningKey
from garrison.db.engine import Database
from garrison.db.retry import transact
from garrison.events import Actor, Event, emit
from garrison.log import get_logger
from garrison.settings import AuthSettings

log = get_logger("garrison.auth.keys")
ALGORITHM = "Ed25519"
LEGACY_ALGORITHM = "EdDSA"
_RELOAD_SECONDS = 30.0
_VERIFIED_TOKENS = 10_000  # verified access tokens remembered per process
_MISS_RELOAD_SECONDS = 5.0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Sealer:
    def __init__(self, master_secret: str) -> None:
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"garrison signing keys v1"
        ).derive(master_secret.encode())
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, context: str) -> str:
        nonce = os.urandom(12)
        return base64.b64encode(
            nonce + self._aead.encrypt(nonce, plaintext, context.encode())
        ).decode()

    def open(self, sealed: str, context: str) -> bytes:
        raw = base64.b64decode(sealed)
        return self._aead.decrypt(raw[:12], raw[12:], context.encode())


@dataclass(frozen=True)
class LoadedKey:
    kid: str
    public: Ed25519PublicKey
    private: Ed25519PrivateKey | None
    public_jwk: dict[str, Any]
    signs_from: datetime
    retired_at: datetime | None
    algorithms: tuple[str, ...] = (ALGORITHM,)  # the header ``alg`` values accepted


def _public_jwk(kid: str, public: Ed25519PublicKey) -> dict[str, Any]:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": _b64(raw),
        "kid": kid,
        "alg": ALGORITHM,
        "use": "sig",
    }


def _public_from_jwk(jwk: dict[str, Any]) -> Ed25519PublicKey:
    x = str(jwk["x"])
    return Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(x + "=" * (-len(x) % 4)))


def _new_row(sealer: Sealer, signs_from: datetime, now: datetime) -> SigningKey:
    private = Ed25519PrivateKey.generate()
    kid = uuid.uuid4().hex
    pkcs8 = private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return SigningKey(
        kid=kid,
        alg=ALGORITHM,
        public_jwk=_public_jwk(kid, private.public_key()),
        private_key=sealer.seal(pkcs8, kid),
        created_at=now,
        signs_from=signs_from,
    )


async def add_first_key(session: AsyncSession, *, sealer: Sealer) -> str:
    """Create a signing key that signs at once (first start, or no usable key left)."""
    now = utcnow()
    row = _new_row(sealer, now, now)
    session.add(row)
    await emit(
        session,
        Event(
            action="auth.key.created",
            actor=Actor.system(),
            target_type="signing_key",
            target_id=row.kid,
        ),
    )
    return row.kid


async def rotate(
    session: AsyncSession, *, sealer: Sealer, settings: AuthSettings, actor: Actor
) -> SigningKey:
    """Publish a new key now; it signs after the activation delay. Older keys retire then,
    and stay published until every token they signed has expired."""
    now = utcnow()
    signing = await session.scalar(
        select(SigningKey.kid)
        .where(SigningKey.retired_at.is_(None), SigningKey.signs_from <= now)
        .limit(1)
    )
    # With no key signing yet (a fresh install), waiting would leave nothing to sign with.
    delay = settings.key_activation_delay if signing is not None else 0
    signs_from = now + timedelta(seconds=delay)
    last_token_expires = signs_from + timedelta(seconds=settings.access_token_ttl + settings.leeway)
    await session.execute(
        update(SigningKey)
        .where(SigningKey.retired_at.is_(None))
        .values(retired_at=signs_from, published_until=last_token_expires)
    )
    row = _new_row(sealer, signs_from, now)
    session.add(row)
    await emit(
        session,
        Event(action="auth.key.rotated", actor=actor, target_type="signing_key", target_id=row.kid),
    )
    return row


class KeyRing:
    """The published keys, cached in-process and reloaded every 30 s (or on an unknown kid,
    at most every 5 s, so garbage kids cannot turn into a query per request)."""

    def __init__(self, db: Database, sealer: Sealer) -> None:
        self.db = db
        self.sealer = sealer
        self._keys: dict[str, LoadedKey] = {}
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()
        self._boot_lock = asyncio.Lock()
        # Tokens already verified here, by their exact text: (kid, exp, claims). Checking a
        # signature costs more than the rest of an authenticated request's Python, and a
        # client sends the same token until it expires.
        self._verified: OrderedDict[str, tuple[str, int, Any]] = OrderedDict()

    async def bootstrap(self) -> None:
        """Load the keys; create one when none can sign (first start, or a changed master
        secret left the old private keys unreadable: they stay published for verification)."""
        async with self._boot_lock:
            await self.reload()
            if not any(key.private is not None for key in self._keys.values()):
                await transact(self.db, lambda session: add_first_key(session, sealer=self.sealer))
                await self.reload()

    async def reload(self) -> None:
        async with self._lock:
            now = utcnow()
            async with self.db.read_session() as session:
                rows = (
                    await session.scalars(
                        select(SigningKey).where(
                            or_(
                                SigningKey.published_until.is_(None),
                                SigningKey.published_until > now,
                            )
                        )
                    )
                ).all()
            keys: dict[str, LoadedKey] = {}
            for row in rows:
                keys[row.kid] = LoadedKey(
                    kid=row.kid,
                    public=_public_from_jwk(row.public_jwk),
                    private=self._open(row),
                    # Published under the name it signs with now, whatever it was made as.
                    public_jwk={**row.public_jwk, "alg": ALGORITHM},
                    signs_from=aware(row.signs_from),
                    retired_at=aware(row.retired_at) if row.retired_at else None,
                    algorithms=(
                        (ALGORITHM, LEGACY_ALGORITHM)
                        if row.alg == LEGACY_ALGORITHM
                        else (ALGORITHM,)
                    ),
                )
            self._keys = keys
            self._loaded_at = time.monotonic()

    def _open(self, row: SigningKey) -> Ed25519PrivateKey | None:
        try:
            private = serialization.load_der_private_key(
                self.sealer.open(row.private_key, row.kid), password=None
            )
        except (InvalidTag, ValueError):
            log.warning("auth.key.unreadable", kid=row.kid, hint="the master secret changed")
            return None
        return private if isinstance(private, Ed25519PrivateKey) else None

    async def _fresh(self, max_age: float) -> None:
        if time.monotonic() - self._loaded_at > max_age:
            await self.reload()

    async def signing_key(self) -> LoadedKey:
        await self._fresh(_RELOAD_SECONDS)
        now = utcnow()
        ready = [key for key in self._keys.values() if key.private is not None]
        usable = [
            key
            for key in ready
            if key.signs_from <= now and (key.retired_at is None or key.retired_at > now)
        ]
        if not usable:  # e.g. the newest key is not active yet: the newest active one signs
            usable = [key for key in ready if key.signs_from <= now]
        if not usable and not any(key.private is not None for key in self._keys.values()):
            await self.bootstrap()
            return await self.signing_key()
        if not usable:
            raise RuntimeError("no signing key is active; run `garrison keys rotate`")
        return max(usable, key=lambda key: key.signs_from)

    async def public_key(self, kid: str) -> Ed25519PublicKey | None:
        key = await self.published(kid)
        return key.public if key else None

    async def published(self, kid: str) -> LoadedKey | None:
        await self._fresh(_RELOAD_SECONDS)
        key = self._keys.get(kid)
        if key is None and time.monotonic() - self._loaded_at > _MISS_RELOAD_SECONDS:
            await self.reload()
            key = self._keys.get(kid)
        return key

    def recall(self, token: str, *, leeway: int) -> Any | None:
        """The claims ``remember`` stored for exactly this token, while it has not expired
        and the key that signed it is still published; else None (verify it again)."""
        entry = self._verified.get(token)
        if entry is None:
            return None
        kid, expires, claims = entry
        if kid not in self._keys or expires + leeway <= time.time():
            self._verified.pop(token, None)
            return None
        return claims

    def remember(self, token: str, *, kid: str, expires: int, claims: Any) -> None:
        self._verified[token] = (kid, expires, claims)
        if len(self._verified) > _VERIFIED_TOKENS:
            self._verified.popitem(last=False)

    def cached_public_key(self, kid: str) -> Ed25519PublicKey | None:
        key = self._keys.get(kid)
        return key.public if key else None

    def cached(self, kid: str) -> LoadedKey | None:
        return self._keys.get(kid)

    async def jwks(self) -> dict[str, Any]:
        await self._fresh(_RELOAD_SECONDS)
        ordered = sorted(self._keys.values(), key=lambda key: key.signs_from, reverse=True)
        return {"keys": [key.public_jwk for key in ordered]}
