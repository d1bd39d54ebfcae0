"""Access tokens: JWTs per RFC 9068, signed with the key ring's current Ed25519 key
(JOSE ``alg: Ed25519``, RFC 9864; ``EdDSA`` accepted from keys made before the rename).

Verification (RFC 8725): the algorithm comes from a fixed allow-list, never from the token;
the key comes from the ``kid`` looked up in Garrison's own key ring, never from ``jku``,
``x5u`` or ``jwk`` headers; ``typ`` must be ``at+jwt``; ``iss``, ``aud``, ``exp``, ``nbf``,
``iat``, ``sub``, ``jti`` and ``client_id`` are required; clock skew is at most
``auth.leeway`` seconds. Any failure is ``InvalidToken`` (401), never a 500.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.algorithms import OKPAlgorithm

from garrison.auth.errors import InvalidToken
from garrison.auth.keys import ALGORITHM, LEGACY_ALGORITHM, KeyRing, LoadedKey
from garrison.settings import Settings

TOKEN_TYPE = "at+jwt"  # noqa: S105 - the JOSE typ value
FIRST_PARTY_CLIENT = "garrison"
ALLOWED_ALGORITHMS = [ALGORITHM, LEGACY_ALGORITHM]
# PyJWT knows Ed25519 signatures as "EdDSA" only; the same algorithm under RFC 9864's name.
try:
    jwt.get_algorithm_by_name(ALGORITHM)
except NotImplementedError:
    jwt.register_algorithm(ALGORITHM, OKPAlgorithm())
_REQUIRED = ["iss", "aud", "exp", "nbf", "iat", "sub", "jti"]
_KID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class IssuedToken:
    token: str
    jti: str
    expires_in: int


@dataclass(frozen=True)
class AccessClaims:
    sub: str
    client_id: str
    jti: str
    exp: int
    iat: int
    scope: frozenset[str]
    generation: int | None
    roles: tuple[str, ...] = ()

    @property
    def is_service(self) -> bool:
        """A client acting for itself (client credentials). A token an OAuth client holds
        for a user (authorization-code grant) carries the user's token generation."""
        return self.client_id != FIRST_PARTY_CLIENT and self.generation is None

    @property
    def is_delegated(self) -> bool:
        """A user's token held by an OAuth client: limited to the scope the user granted."""
        return self.client_id != FIRST_PARTY_CLIENT and self.generation is not None


async def issue(
    keyring: KeyRing,
    settings: Settings,
    *,
    subject: str,
    client_id: str,
    scope: list[str],
    roles: list[str] | None = None,
    generation: int | None = None,
    now: int,
) -> IssuedToken:
    key = await keyring.signing_key()
    ttl = settings.auth.access_token_ttl
    jti = uuid.uuid4().hex
    claims: dict[str, Any] = {
        "iss": settings.issuer,
        "aud": settings.auth.audience,
        "sub": subject,
        "client_id": client_id,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": jti,
        "scope": " ".join(sorted(scope)),
    }
    if roles is not None:
        claims["roles"] = sorted(roles)
    if generation is not None:
        claims["gen"] = generation
    assert key.private is not None
    token = jwt.encode(
        claims, key.private, algorithm=ALGORITHM, headers={"kid": key.kid, "typ": TOKEN_TYPE}
    )
    return IssuedToken(token=token, jti=jti, expires_in=ttl)


def _header(token: str) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise InvalidToken("the access token is malformed") from None
    if header.get("alg") not in ALLOWED_ALGORITHMS:
        raise InvalidToken("the access token's algorithm is not accepted")
    if str(header.get("typ", "")).lower() not in (TOKEN_TYPE, "application/" + TOKEN_TYPE):
        raise InvalidToken("the token is not an access token (typ)")
    kid = header.get("kid")
    if not isinstance(kid, str) or not _KID.match(kid):
        raise InvalidToken("the access token's key id is missing or malformed")
    return header


async def verify(token: str, keyring: KeyRing, settings: Settings) -> AccessClaims:
    known: AccessClaims | None = keyring.recall(token, leeway=settings.auth.leeway)
    if known is not None:
        return known
    header = _header(token)
    key = await keyring.published(header["kid"])
    if key is None:
        raise InvalidToken("the access token was signed with an unknown key")
    claims = decode_with(token, key.public, settings, algorithms=_accepted(key, header))
    keyring.remember(token, kid=header["kid"], expires=claims.exp, claims=claims)
    return claims


def _accepted(key: LoadedKey, header: dict[str, Any]) -> list[str]:
    """The names this key's tokens may carry: ``Ed25519``, and ``EdDSA`` for keys made
    before RFC 9864's name was adopted (their tokens expire like any other)."""
    if header.get("alg") not in key.algorithms:
        raise InvalidToken("the access token's algorithm is not accepted for its key")
    return list(key.algorithms)


def decode_with(
    token: str, key: Any, settings: Settings, *, algorithms: list[str] | None = None
) -> AccessClaims:
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=algorithms or [ALGORITHM],
            audience=settings.auth.audience,
            issuer=settings.issuer,
            leeway=settings.auth.leeway,
            options={"require": _REQUIRED, "verify_signature": True},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("the access token has expired") from None
    except jwt.PyJWTError:
        raise InvalidToken("the access token is invalid") from None
    sub, client_id, jti = claims.get("sub"), claims.get("client_id"), claims.get("jti")
    scope = claims.get("scope", "")
    generation = claims.get("gen")
    if not (isinstance(sub, str) and isinstance(client_id, str) and isinstance(jti, str)):
        raise InvalidToken("the access token lacks required claims")
    if not isinstance(scope, str) or (generation is not None and not isinstance(generation, int)):
        raise InvalidToken("the access token has malformed claims")
    return AccessClaims(
        sub=sub,
        client_id=client_id,
        jti=jti,
        exp=int(claims["exp"]),
        iat=int(claims["iat"]),
        scope=frozenset(scope.split()),
        generation=generation,
        roles=tuple(r for r in claims.get("roles") or () if isinstance(r, str)),
    )


def verify_cached(token: str, keyring: KeyRing, settings: Settings) -> AccessClaims | None:
    """Verification with the keys already in memory, for cheap identification; never raises."""
    known: AccessClaims | None = keyring.recall(token, leeway=settings.auth.leeway)
    if known is not None:
        return known
    try:
        header = _header(token)
        key = keyring.cached(header["kid"])
        if key is None:
            return None
        claims = decode_with(token, key.public, settings, algorithms=_accepted(key, header))
    except InvalidToken:
        return None
    keyring.remember(token, kid=header["kid"], expires=claims.exp, claims=claims)
    return claims
