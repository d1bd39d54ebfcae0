"""``principal_key(scope)``: who is calling, cheaply, for the rate limiter.

Reads ``Authorization: Bearer`` / ``X-API-Key`` (through ``gateway.credentials``, the one
parse of those headers per request) and returns ``user:<id>``, ``client:<id>``
or ``key:<id>``, or None when there is no credential or it does not check out. JWTs are
verified with the keys already in memory (no database, no network); API keys are looked up
by hash with a short in-process cache. It never raises: a broken credential is None here,
and the endpoint answers it with 401 later. A verified access token's claims are left in
the request state, so authentication does not verify the same token again, and so is the
token's deny-list key, which the rate limiter asks the store about in its own round trip.
"""

from __future__ import annotations

from garrison.auth import apikeys, tokens
from garrison.auth.authenticate import credential
from garrison.auth.denylist import deny_key
from garrison.auth.errors import InvalidToken
from garrison.auth.opaque import digest
from garrison.auth.principal import principal_key_of
from garrison.auth.runtime import AuthRuntime
from garrison.context import state
from garrison.gateway.credentials import DuplicateCredential, credential_headers
from garrison.gateway.rate_limit import PROBE
from garrison.log import get_logger
from garrison.runtime import find_runtime
from garrison.types import Scope

log = get_logger("garrison.auth.identify")
ROLES_KEY = "identified_roles"
CLAIMS_KEY = "verified_claims"


def _runtime(scope: Scope) -> AuthRuntime | None:
    runtime = find_runtime(scope)
    return None if runtime is None else runtime.find(AuthRuntime)


async def principal_key(scope: Scope) -> str | None:
    runtime = _runtime(scope)
    if runtime is None:
        return None
    try:
        found = credential(credential_headers(scope))
    except (InvalidToken, DuplicateCredential):
        return None
    if found is None:
        return None
    kind, value = found
    try:
        if kind == "jwt":
            claims = tokens.verify_cached(value, runtime.keyring, runtime.settings)
            if claims is None:
                return None
            values = state(scope)
            values[ROLES_KEY] = claims.roles
            values[CLAIMS_KEY] = (value, claims)  # authentication reuses this verification
            values[PROBE] = deny_key(claims.jti)  # the deny list, in the limiter's round trip
            if claims.is_service:
                return principal_key_of("service", claims.client_id)
            return principal_key_of("user", claims.sub)
        hashed = digest(value)
        hit, key_id = runtime.api_keys.get(hashed)
        if not hit:
            async with runtime.db.read_session() as session:
                row = await apikeys.find_active(session, secret=value)
            key_id = row.id if row is not None else None
            runtime.api_keys.put(hashed, key_id)
        return principal_key_of("api_key", key_id) if key_id else None
    except Exception as exc:  # identification must never break a request
        log.warning("auth.identify.failed", error=type(exc).__name__)
        return None


async def principal_roles(scope: Scope) -> tuple[str, ...]:
    """The roles of the caller ``principal_key`` identified from an access token (for
    per-role quotas); empty for API keys, which carry quotas of their own, and anonymous
    callers."""
    roles: tuple[str, ...] = state(scope).get(ROLES_KEY, ())
    return roles
