"""The hash chain's arithmetic, free of any database: canonical encoding, entry hashes,
secret redaction and the HMAC that signs retention checkpoints.

An entry's hash is ``SHA-256(prev_hash || canonical JSON of its fields)``; canonical JSON has
sorted keys, no insignificant whitespace, and times as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, so
the same row always hashes the same on SQLite and MySQL/MariaDB.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from garrison.log import REDACTED, redact_secrets
from garrison.types import canonical_time

HASHED_FIELDS = (
    "id",
    "seq",
    "event_id",
    "occurred_at",
    "actor_kind",
    "actor_id",
    "ip",
    "user_agent",
    "request_id",
    "action",
    "target_type",
    "target_id",
    "outcome",
    "changes",
    "data",
)
# Hashed only when set, so entries written before they existed keep their hashes.
OPTIONAL_HASHED_FIELDS = ("subject_id", "sealed")
_CHECKPOINT_KEY_LABEL = b"garrison/audit/checkpoint/v1"


def canonical_json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str).decode()


def redact(value: Any) -> Any:
    """A copy of ``value`` with every secret-looking key's value replaced, at any depth."""
    if isinstance(value, Mapping):
        copied = {str(k): redact(v) for k, v in value.items()}
        return dict(redact_secrets(None, "", copied))
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    return value


def encode_changes(changes: Mapping[str, tuple[Any, Any]] | None) -> str | None:
    """``{field: (before, after)}`` as canonical JSON ``{field: {"before", "after"}}``;
    a secret field keeps its name but both values become ``[redacted]``."""
    if not changes:
        return None
    encoded: dict[str, Any] = {}
    for name, (before, after) in changes.items():
        if redact_secrets(None, "", {name: True})[name] == REDACTED:
            encoded[name] = {"before": REDACTED, "after": REDACTED}
        else:
            encoded[name] = {"before": redact(before), "after": redact(after)}
    return canonical_json(encoded)


def encode_data(data: Mapping[str, Any] | None) -> str | None:
    return canonical_json(redact(data)) if data else None


def entry_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    body = {name: fields[name] for name in HASHED_FIELDS}
    for name in OPTIONAL_HASHED_FIELDS:
        if fields.get(name) is not None:
            body[name] = fields[name]
    body["occurred_at"] = canonical_time(body["occurred_at"])
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(canonical_json(body).encode())
    return digest.hexdigest()


def checkpoint_key(secret_key: str) -> bytes:
    """The checkpoint signing key, derived so the master secret itself never signs data."""
    return hmac.new(secret_key.encode(), _CHECKPOINT_KEY_LABEL, hashlib.sha256).digest()


def sign_checkpoint(
    key: bytes, *, through_seq: int, anchor_hash: str, purged: int, created_at: datetime
) -> str:
    message = canonical_json(
        {
            "through_seq": through_seq,
            "anchor_hash": anchor_hash,
            "purged": purged,
            "created_at": canonical_time(created_at),
        }
    )
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()
