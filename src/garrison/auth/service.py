"""The auth flows that span more than one transaction: register, login, refresh, client
credentials, logout.

These take the ``Database`` rather than a session, on purpose: argon2 must run before any
write transaction opens (so no write lock is held while it works), and a denied attempt
must leave a committed trace (a revoked token family, an audit event) although the request
fails. Each step is one ``transact`` unit; nothing here commits half a step.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from garrison.auth import clients, rbac, refresh, tokens, users
from garrison.auth.clock import utcnow
from garrison.auth.errors import InvalidCredentials, OAuthError
from garrison.auth.passwords import check_policy
from garrison.auth.principal import Principal
from garrison.auth.runtime import AuthRuntime
from garrison.context import current_context
from garrison.db.retry import transact
from garrison.errors import Forbidden, ValidationFailed
from garrison.events import Actor, Event, emit, emit_standalone

DEFAULT_ROLE = "user"


async def _denied(
    runtime: AuthRuntime,
    action: str,
    *,
    actor: Actor,
    target: tuple[str, str | None],
    data: dict[str, object] | None = None,
) -> None:
    """Record a refused attempt (its own transaction: the attempt's has rolled back)."""
    event = Event(
        action=action,
        actor=actor,
        target_type=target[0],
        target_id=target[1],
        outcome="denied",
        data=data or {},
    )
    await emit_standalone(runtime.db, event)


class WrongClient(Exception):
    """A refresh token presented by a client other than the one it was issued to."""


ClientCheck = Callable[[AsyncSession, str], Awaitable[bool]]


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    expires_in: int
    refresh_token: str | None
    scope: str
    id_token: str | None = None  # OpenID Connect, for an OAuth client granted ``openid``


async def register(
    runtime: AuthRuntime,
    *,
    email: str,
    password: str,
    roles: list[str] | None = None,
    actor: Actor | None = None,
    verified: bool = False,
) -> str:
    """Create a user (policy-checked, argon2id) and return its id."""
    normalised = users.normalise_email(email)
    check_policy(password, runtime.settings.auth)
    password_hash = await runtime.hasher.hash(password)

    async def work(session: AsyncSession) -> str:
        user = await users.create_user(
            session,
            email=normalised,
            password_hash=password_hash,
            roles=roles if roles is not None else [DEFAULT_ROLE],
            actor=actor or Actor.anonymous(),
            verified=verified,
        )
        return user.id

    user_id: str = await transact(runtime.db, work)
    runtime.db.note_write(f"user:{user_id}")
    return user_id


async def count_failure(
    runtime: AuthRuntime,
    kind: str,
    subject: str,
    ip: str | None,
    *,
    target: tuple[str, str | None],
) -> None:
    """Count a failed attempt; when it starts a lockout, record an ``auth.lockout`` event."""
    seconds = await runtime.lockout.failed(kind, subject, ip)
    if seconds > 0:
        await _denied(
            runtime,
            "auth.lockout",
            actor=Actor.anonymous(),
            target=target,
            data={"kind": kind, "seconds": seconds},
        )


async def _tokens_for_user(
    runtime: AuthRuntime, user_id: str, generation: int, roles: list[str], permissions: set[str]
) -> tuple[str, int]:
    issued = await tokens.issue(
        runtime.keyring,
        runtime.settings,
        subject=user_id,
        client_id=tokens.FIRST_PARTY_CLIENT,
        scope=sorted(permissions),
        roles=roles,
        generation=generation,
        now=int(utcnow().timestamp()),
    )
    return issued.token, issued.expires_in


async def check_login(runtime: AuthRuntime, *, email: str, password: str) -> tuple[str, str]:
    """The user id and stored hash behind an e-mail and password, or ``InvalidCredentials``:
    the same error, after the same work, for an unknown user and a wrong password. Counts
    failures for the lockout and records the denied attempt (its own transaction)."""
    ip = current_context().ip
    try:
        normalised = users.normalise_email(email)
    except ValidationFailed:
        normalised = email.strip().lower()  # no such user; still do the same work
    await runtime.lockout.check("account", normalised, ip)
    async with runtime.db.read_session() as session:
        user = await users.find_by_email(session, email=normalised)
        stored = user.password_hash if user is not None else None
        user_id = user.id if user is not None else None
        status = user.status if user is not None else None
    ok = await runtime.hasher.verify(stored, password)
    if not ok or user_id is None:
        await count_failure(runtime, "account", normalised, ip, target=("user", user_id))
        await _denied(
            runtime,
            "auth.login.failed",
            actor=Actor.anonymous(),
            target=("user", user_id),
            data={"reason": "bad_credentials"},
        )
        raise InvalidCredentials()
    if status != "active":
        await _denied(
            runtime,
            "auth.login.failed",
            actor=Actor("user", user_id),
            target=("user", user_id),
            data={"reason": "disabled"},
        )
        raise InvalidCredentials()
    await runtime.lockout.succeeded("account", normalised)
    return user_id, stored or ""


async def login(runtime: AuthRuntime, *, email: str, password: str) -> TokenPair:
    """Check the credentials (``check_login``), then start a session."""
    user_id, stored = await check_login(runtime, email=email, password=password)
    new_hash = (
        await runtime.hasher.hash(password) if runtime.hasher.needs_rehash(stored or "") else None
    )

    uid: str = user_id

    async def work(session: AsyncSession) -> tuple[int, list[str], set[str], refresh.NewRefresh]:
        if new_hash is not None:
            await users.rehash(session, user_id=uid, password_hash=new_hash)
        user = await users.get_user(session, user_id=uid)
        roles, permissions = await rbac.permissions_of(session, user_id=uid)
        family = await refresh.start_family(session, user_id=uid, settings=runtime.settings.auth)
        await emit(
            session,
            Event(
                action="auth.login.succeeded",
                actor=Actor("user", uid),
                target_type="user",
                target_id=uid,
                data={"family_id": family.family_id, "rehashed": new_hash is not None},
            ),
        )
        return user.token_generation, roles, permissions, family

    generation, roles, permissions, family = await transact(runtime.db, work)
    runtime.db.note_write(f"user:{uid}")
    access, expires_in = await _tokens_for_user(runtime, uid, generation, roles, permissions)
    return TokenPair(access, expires_in, family.token, " ".join(sorted(permissions)))


async def refresh_grant(
    runtime: AuthRuntime, *, token: str, client_check: ClientCheck | None = None
) -> TokenPair:
    """Rotate a refresh token. A family an OAuth client holds is refreshed only by that
    client (``client_check`` says whether the request's client authentication names it),
    and keeps the client's id and granted scope."""
    if not token.startswith("grt_") or len(token) > 128:
        raise OAuthError("invalid_grant", "the refresh token is invalid")

    async def work(
        session: AsyncSession,
    ) -> refresh.Rejected | tuple[refresh.Rotated, int, list[str], set[str]]:
        outcome = await refresh.rotate(session, token=token, settings=runtime.settings.auth)
        if isinstance(outcome, refresh.Rejected):
            if outcome.reason == "reused" and outcome.family_id is not None:
                # Committed with this unit, although the request fails.
                await refresh.revoke_family(session, family_id=outcome.family_id)
                await emit(
                    session,
                    Event(
                        action="auth.refresh.reuse_detected",
                        actor=Actor.anonymous(),
                        target_type="user",
                        target_id=outcome.user_id,
                        outcome="denied",
                        data={"family_id": outcome.family_id},
                    ),
                )
            return outcome
        if outcome.client_id is not None and (
            client_check is None or not await client_check(session, outcome.client_id)
        ):
            raise WrongClient()  # rolls the rotation back: the right client's token stays good
        user = await users.get_user(session, user_id=outcome.user_id)
        if user.status != "active":
            await refresh.revoke_family(session, family_id=outcome.family_id)
            return refresh.Rejected("revoked", user.id, outcome.family_id)
        roles, permissions = await rbac.permissions_of(session, user_id=user.id)
        await emit(
            session,
            Event(
                action="auth.refresh.succeeded",
                actor=Actor("user", user.id),
                target_type="user",
                target_id=user.id,
                data={"family_id": outcome.family_id, "client_id": outcome.client_id},
            ),
        )
        return outcome, user.token_generation, roles, permissions

    try:
        result = await transact(runtime.db, work)
    except WrongClient:
        raise OAuthError(
            "invalid_grant", "the refresh token was issued to another client"
        ) from None
    if isinstance(result, refresh.Rejected):
        if result.reason != "reused":
            await _denied(
                runtime,
                "auth.refresh.failed",
                actor=Actor.anonymous(),
                target=("user", result.user_id),
                data={"reason": result.reason},
            )
        raise OAuthError("invalid_grant", "the refresh token is invalid, expired or revoked")
    rotated, generation, roles, permissions = result
    if rotated.client_id is not None:
        granted = delegated_scope(permissions, list(rotated.scope or ()))
        issued = await tokens.issue(
            runtime.keyring,
            runtime.settings,
            subject=rotated.user_id,
            client_id=rotated.client_id,
            scope=granted,
            generation=generation,
            now=int(utcnow().timestamp()),
        )
        return TokenPair(
            issued.token, issued.expires_in, rotated.successor.token, " ".join(sorted(granted))
        )
    access, expires_in = await _tokens_for_user(
        runtime, rotated.user_id, generation, roles, permissions
    )
    return TokenPair(access, expires_in, rotated.successor.token, " ".join(sorted(permissions)))


OIDC_SCOPES = frozenset({"openid", "email", "profile", "offline_access"})


def delegated_scope(held: set[str] | frozenset[str], wanted: list[str]) -> list[str]:
    """What an OAuth client gets: the wanted OpenID scopes, and the wanted permissions the
    user holds now."""
    oidc = [item for item in wanted if item in OIDC_SCOPES]
    permissions = rbac.narrow(held, [item for item in wanted if item not in OIDC_SCOPES])
    return sorted({*oidc, *permissions})


async def client_credentials(
    runtime: AuthRuntime, *, client_id: str, secret: str, scope: str | None, basic: bool
) -> TokenPair:
    ip = current_context().ip
    challenge = {"WWW-Authenticate": 'Basic realm="garrison"'} if basic else None
    await runtime.lockout.check("client", client_id, ip)
    async with runtime.db.read_session() as session:
        client = await clients.check_secret(session, client_id=client_id, secret=secret)
    if client is None:
        await count_failure(runtime, "client", client_id, ip, target=("service_client", None))
        await _denied(
            runtime,
            "auth.client.auth_failed",
            actor=Actor.anonymous(),
            target=("service_client", client_id[:64]),
        )
        raise OAuthError(
            "invalid_client", "client authentication failed", status=401, headers=challenge
        )
    await runtime.lockout.succeeded("client", client_id)
    granted = list(client.scopes)
    if scope:
        wanted = scope.split()
        if not rbac.subset(granted, wanted):
            raise OAuthError("invalid_scope", "the requested scope exceeds what was granted")
        granted = sorted(set(wanted))
    issued = await tokens.issue(
        runtime.keyring,
        runtime.settings,
        subject=client.client_id,
        client_id=client.client_id,
        scope=granted,
        now=int(utcnow().timestamp()),
    )
    await emit_standalone(
        runtime.db,
        Event(
            action="auth.token.issued",
            actor=Actor("service", client.client_id),
            target_type="service_client",
            target_id=client.client_id,
            data={"scope": granted},
        ),
    )
    return TokenPair(issued.token, issued.expires_in, None, " ".join(granted))


async def logout(runtime: AuthRuntime, *, principal: Principal, refresh_token: str | None) -> None:
    """End this session: deny the presented access token, revoke the refresh family."""
    if principal.kind != "user" or principal.user_id is None:
        raise Forbidden("only user sessions can log out")
    denied: tuple[str, datetime] | None = None
    if principal.token_id and principal.token_expires:
        until = principal.token_expires + runtime.settings.auth.leeway
        if until > utcnow().timestamp():
            denied = (principal.token_id, datetime.fromtimestamp(until, UTC))
    user_id = principal.user_id

    async def work(session: AsyncSession) -> None:
        if denied is not None:  # the record, in the logout's own transaction
            await runtime.deny_list.deny(session, jti=denied[0], expires_at=denied[1])
        family = None
        if refresh_token:
            found = await refresh.family_of(session, token=refresh_token)
            if found is not None and found[0] == user_id:
                family = found[1]
                await refresh.revoke_family(session, family_id=family)
        await emit(
            session,
            Event(
                action="auth.logout",
                actor=principal.actor,
                target_type="user",
                target_id=user_id,
                data={"family_id": family},
            ),
        )

    await transact(runtime.db, work)
    if denied is not None:
        await runtime.deny_list.publish(jti=denied[0], expires_at=denied[1])


async def change_password(
    runtime: AuthRuntime, *, user_id: str, current: str, new: str, actor: Actor
) -> bool:
    """Check the current password, then store the new one and end every session."""
    ip = current_context().ip
    async with runtime.db.read_session() as session:
        user = await users.get_user(session, user_id=user_id)
        stored, email = user.password_hash, user.email
    await runtime.lockout.check("account", email, ip)
    if not await runtime.hasher.verify(stored, current):
        await count_failure(runtime, "account", email, ip, target=("user", user_id))
        await _denied(runtime, "auth.password.change_failed", actor=actor, target=("user", user_id))
        return False
    new_hash = await runtime.hasher.hash(new)

    async def work(session: AsyncSession) -> None:
        await users.set_password(
            session, user_id=user_id, password_hash=new_hash, actor=actor, reason="change"
        )

    await transact(runtime.db, work)
    return True


issue_user_token = _tokens_for_user  # the access token of a session started elsewhere
