"""Short-lived signed links to one file: ``?token=<expiry>.<kid>.<HMAC-SHA256>``.

The MAC covers the file id and the expiry under a key derived for this purpose from the
master secret (``crypto.Keyring``), so a link cannot be moved to another file, extended
or forged; after a key rotation, links made under a previous key still verify until they
expire. Comparison is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from garrison.crypto import Keyring, UnknownKey
from garrison.files.errors import InvalidSignedUrl

PURPOSE = "files.signed-url"
MAX_TOKEN = 200


def _mac(key: bytes, file_id: str, expires: int) -> str:
    digest = hmac.new(key, f"{file_id}.{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def sign(keyring: Keyring, *, file_id: str, expires: int) -> str:
    kid, key = keyring.derive(PURPOSE)
    return f"{expires}.{kid}.{_mac(key, file_id, expires)}"


def verify(keyring: Keyring, *, file_id: str, token: str, now: float | None = None) -> None:
    """``InvalidSignedUrl`` saying why, unless ``token`` is a live link to ``file_id``."""
    parts = token.split(".") if len(token) <= MAX_TOKEN else []
    if len(parts) != 3 or not parts[0].isascii() or not parts[0].isdigit():
        raise InvalidSignedUrl("the signed link is malformed", parameter="token")
    expires, kid, mac = int(parts[0]), parts[1], parts[2]
    try:
        _, key = keyring.derive(PURPOSE, kid)
    except UnknownKey:
        raise InvalidSignedUrl("the signed link was altered", parameter="token") from None
    if not hmac.compare_digest(_mac(key, file_id, expires), mac):
        raise InvalidSignedUrl("the signed link was altered", parameter="token")
    if expires < (time.time() if now is None else now):
        raise InvalidSignedUrl("the signed link has expired", parameter="token")
