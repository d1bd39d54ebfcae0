"""Garrison as an OpenID provider for its OAuth clients (OpenID Connect Core): an
``id_token`` beside the access token when the client was granted ``openid``, the userinfo
endpoint, and the discovery document. ID tokens are signed like access tokens (the key
ring's Ed25519 key, ``alg: Ed25519``) with ``typ: JWT``, so neither passes for the other."""

from __future__ import annotations

from typing import Any

import jwt

from garrison.auth import tokens
from garrison.auth.keys import ALGORITHM
from garrison.auth.models import User
from garrison.auth.oauth.oidc import at_hash
from garrison.auth.runtime import AuthRuntime

ID_TOKEN_TYPE = "JWT"  # noqa: S105 - the JOSE typ value


async def id_token(
    runtime: AuthRuntime,
    *,
    user: User,
    client_id: str,
    scope: list[str],
    nonce: str | None,
    access_token: str,
    now: int,
) -> str:
    key = await runtime.keyring.signing_key()
    assert key.private is not None
    settings = runtime.settings
    claims: dict[str, Any] = {
        "iss": settings.issuer,
        "sub": user.id,
        "aud": client_id,
        "azp": client_id,
        "iat": now,
        "exp": now + settings.auth.access_token_ttl,
        "auth_time": now,
        "at_hash": at_hash(access_token, ALGORITHM),
    }
    if nonce is not None:
        claims["nonce"] = nonce
    claims.update(user_claims(user, scope))
    assert ALGORITHM in tokens.ALLOWED_ALGORITHMS  # registered with PyJWT by tokens
    return jwt.encode(
        claims, key.private, algorithm=ALGORITHM, headers={"kid": key.kid, "typ": ID_TOKEN_TYPE}
    )


def user_claims(user: User, scope: list[str] | frozenset[str]) -> dict[str, Any]:
    claims: dict[str, Any] = {}
    if "email" in scope:
        claims["email"] = user.email
        claims["email_verified"] = user.email_verified_at is not None
    return claims


def discovery(issuer: str, metadata: dict[str, Any]) -> dict[str, Any]:
    """``/.well-known/openid-configuration``: the RFC 8414 metadata plus OpenID's own."""
    return {
        **metadata,
        "userinfo_endpoint": f"{issuer}/api/v1/auth/userinfo",
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ALGORITHM],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "email", "email_verified"],
    }
