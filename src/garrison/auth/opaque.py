"""Opaque secrets: generation with a recognisable prefix, and the fast hash used to store
them (they carry ≥ 256 bits of randomness, so SHA-256 is enough; passwords use argon2)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

REFRESH_PREFIX = "grt_"
API_KEY_PREFIX = "gar_"
CLIENT_SECRET_PREFIX = "gcs_"  # noqa: S105 - a prefix, not a secret
ONE_TIME_PREFIX = "got_"


def new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)  # 256 bits


def digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
