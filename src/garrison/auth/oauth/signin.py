"""Sign-in with an external provider, from the redirect out to the callback.

``start`` records a sign-in state (bound to the browser by a cookie's hash, single use,
``auth.sign_in_ttl`` seconds, with a PKCE S256 verifier and, for OpenID Connect, a nonce)
and returns the provider's authorization URL. ``finish`` spends the state, exchanges the
code, validates the ``id_token`` (or reads userinfo), then links or creates the account and
starts a Garrison session, all in one transaction: the audit entry names the provider.

Linking rules: a known identity signs its user in; a new one links to an existing account
only through an e-mail address the provider asserts as verified, and only when the account
has verified that address too (else whoever registered it unverified may hold its
password); it creates an account only while registration is ``open``; an identity without
a verified address is refused.
Both functions are workflows that own their transactions (``db.retry.transact``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

from sqlalchemy import update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from garrison.auth import rbac, refresh, service, users
from garrison.auth.clock import utcnow
from garrison.auth.errors import (
    IdentityConflict,
    InvalidCredentials,
    ProviderUnavailable,
    SignInFailed,
    SignUpClosed,
)
from garrison.auth.oauth import assertion, identities, providers
from garrison.auth.oauth.models import IdentityProvider, SignInState
from garrison.auth.oauth.server import s256
from garrison.auth.opaque import digest
from garrison.auth.runtime import AuthRuntime
from garrison.crypto import keyring_for
from garrison.db.retry import transact
from garrison.errors import GarrisonError, NotFound, ValidationFailed
from garrison.events import Actor, Event, emit, emit_standalone

VERIFIER_PURPOSE = "auth.provider.pkce"
TICKET_SECONDS = 120


async def _provider(runtime: AuthRuntime, name: str) -> IdentityProvider:
    async with runtime.db.read_session() as session:
        try:
            row = await providers.get_provider(session, name=name)
        except NotFound:
            row = None
    if row is None or not row.enabled:
        raise NotFound("no such identity provider")
    return row


async def _spend(
    session: AsyncSession, *, value: str, purpose: tuple[str, ...], provider: str
) -> SignInState | None:
    """Mark a state (or ticket) used; None when it is unknown, used, expired or another's."""
    hashed = digest(value)
    result = await session.execute(
        update(SignInState)
        .where(
            SignInState.state_hash == hashed,
            SignInState.used_at.is_(None),
            SignInState.expires_at > utcnow(),
            SignInState.provider == provider,
            SignInState.purpose.in_(purpose),
        )
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)
    if result.rowcount != 1:
        return None
    row: SignInState | None = await session.get(SignInState, hashed)
    return row


async def new_link_ticket(runtime: AuthRuntime, *, user_id: str, provider: str) -> str:
    """A signed-in user's single-use permission to link ``provider`` in the browser."""
    await _provider(runtime, provider)
    ticket = "glt_" + secrets.token_urlsafe(32)
    now = utcnow()

    async def work(session: AsyncSession) -> None:
        session.add(
            SignInState(
                state_hash=digest(ticket),
                purpose="ticket",
                provider=provider,
                user_id=user_id,
                created_at=now,
                expires_at=now + timedelta(seconds=TICKET_SECONDS),
            )
        )

    await transact(runtime.db, work)
    return ticket


def check_landing(row: IdentityProvider, redirect_uri: str | None) -> str | None:
    """The browser's landing page after sign-in: one of the provider's allow-list, exactly."""
    if redirect_uri is None:
        return None
    if redirect_uri not in row.redirect_uris:
        raise ValidationFailed(
            "redirect_uri is not in this provider's allow-list",
            errors=[{"parameter": "redirect_uri", "detail": "not an allowed redirect URI"}],
        )
    return redirect_uri


async def start(
    runtime: AuthRuntime,
    *,
    name: str,
    redirect_uri: str | None,
    browser: str,
    link_ticket: str | None = None,
) -> str:
    row = await _provider(runtime, name)
    landing = check_landing(row, redirect_uri)
    found = await assertion.endpoints_of(runtime, row)
    state = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64)
    nonce = secrets.token_urlsafe(32) if row.kind == "oidc" else None
    sealed = keyring_for(runtime.settings).seal(
        verifier, purpose=VERIFIER_PURPOSE, context=digest(state)
    )
    now = utcnow()

    async def work(session: AsyncSession) -> None:
        user_id = None
        if link_ticket is not None:
            ticket = await _spend(session, value=link_ticket, purpose=("ticket",), provider=name)
            if ticket is None:
                raise SignInFailed("the link ticket is invalid, expired or used")
            user_id = ticket.user_id
        session.add(
            SignInState(
                state_hash=digest(state),
                purpose="link" if user_id else "sign_in",
                provider=name,
                browser_hash=digest(browser),
                code_verifier=sealed,
                nonce=nonce,
                redirect_uri=landing,
                user_id=user_id,
                created_at=now,
                expires_at=now + timedelta(seconds=runtime.settings.auth.sign_in_ttl),
            )
        )

    await transact(runtime.db, work)
    params = {
        "response_type": "code",
        "client_id": row.client_id,
        "redirect_uri": providers.callback_url(runtime.settings.issuer, name),
        "scope": " ".join(row.scopes),
        "state": state,
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
        **({"nonce": nonce} if nonce else {}),
        **({"response_mode": "form_post"} if providers.form_post(row) else {}),
    }
    glue = "&" if "?" in found.authorization else "?"
    return found.authorization + glue + urlencode(params)


@dataclass(frozen=True)
class Finished:
    purpose: str  # sign_in | link
    redirect_uri: str | None
    tokens: service.TokenPair | None
    user_id: str


async def finish(
    runtime: AuthRuntime, *, name: str, params: dict[str, str], browser: str | None
) -> Finished:
    """The callback; a refusal is audited (its own transaction) with the provider named."""
    try:
        return await _finish(runtime, name=name, params=params, browser=browser)
    except (SignInFailed, ProviderUnavailable, IdentityConflict, SignUpClosed) as exc:
        await emit_standalone(
            runtime.db,
            Event(
                action="auth.provider.sign_in_failed",
                actor=Actor.anonymous(),
                target_type="identity_provider",
                target_id=name[:64],
                outcome="denied" if not isinstance(exc, ProviderUnavailable) else "failed",
                data={"reason": exc.slug, "detail": _detail(exc)},
            ),
        )
        raise


def _detail(exc: GarrisonError) -> str:
    return (exc.detail or "")[:200]


async def _finish(
    runtime: AuthRuntime, *, name: str, params: dict[str, str], browser: str | None
) -> Finished:
    row = await _provider(runtime, name)
    state = params.get("state")
    if not state or len(state) > 256:
        raise SignInFailed("state is missing")

    async def spend(session: AsyncSession) -> SignInState | None:
        return await _spend(session, value=state, purpose=("sign_in", "link"), provider=name)

    spent = await transact(runtime.db, spend)
    if spent is None:
        raise SignInFailed("the sign-in state is unknown, expired or already used")
    if browser is None or spent.browser_hash != digest(browser):
        raise SignInFailed("this sign-in was started in another browser session")
    if params.get("error"):
        raise SignInFailed("the identity provider did not sign the user in")
    found = await assertion.endpoints_of(runtime, row)
    # Mix-up defence: a callback URL per provider (RFC 9700 §4.4), and RFC 9207's ``iss``.
    if found.issuer is not None and "iss" in params and params["iss"] != found.issuer:
        raise SignInFailed("the authorization response came from another issuer")
    code = params.get("code")
    if not code or len(code) > 2048:
        raise SignInFailed("code is missing")
    assert spent.code_verifier is not None
    keyring = keyring_for(runtime.settings)
    verifier = keyring.open_text(
        spent.code_verifier, purpose=VERIFIER_PURPOSE, context=spent.state_hash
    )
    tokens = await runtime.providers.exchange(
        found.token,
        client_id=row.client_id,
        client_secret=providers.open_secret(row, keyring),
        code=code,
        redirect_uri=providers.callback_url(runtime.settings.issuer, name),
        code_verifier=verifier,
    )
    who = await assertion.asserted(runtime, row, found, tokens, spent.nonce)
    if spent.purpose == "link":
        return await _link(runtime, name, spent, who)
    return await _sign_in(runtime, name, spent, who)


async def _link(
    runtime: AuthRuntime, name: str, spent: SignInState, who: assertion.Asserted
) -> Finished:
    assert spent.user_id is not None
    user_id = spent.user_id

    async def work(session: AsyncSession) -> None:
        await identities.link(
            session,
            user_id=user_id,
            provider=name,
            subject=who.subject,
            email=who.email,
            actor=Actor("user", user_id),
            via="signed_in",
        )

    await transact(runtime.db, work)
    return Finished("link", spent.redirect_uri, None, user_id)


async def _sign_in(
    runtime: AuthRuntime, name: str, spent: SignInState, who: assertion.Asserted
) -> Finished:
    settings = runtime.settings

    async def work(session: AsyncSession) -> tuple[str, int, list[str], set[str], str]:
        identity = await identities.find(session, provider=name, subject=who.subject)
        created = linked = False
        if identity is not None:
            user_id = identity.user_id
            identity.last_used_at = utcnow()
        else:
            if who.email is None or not who.verified:
                raise IdentityConflict(
                    "the provider did not assert a verified e-mail address for this account"
                )
            email = users.normalise_email(who.email)
            user = await users.find_by_email(session, email=email)
            if user is not None and user.email_verified_at is None:
                # Pre-account hijacking: whoever registered the address unverified may hold
                # its password; the owner links the provider after signing in instead.
                raise IdentityConflict(
                    "an account with this e-mail address exists but the address is not"
                    " verified; sign in with its password, then link the provider"
                )
            if user is None:
                if settings.auth.registration != "open":
                    raise SignUpClosed("sign-up is not open; ask an administrator for an account")
                user = await users.create_user(
                    session,
                    email=email,
                    password_hash=identities.NO_PASSWORD,
                    roles=[service.DEFAULT_ROLE],
                    actor=Actor.anonymous(),
                    verified=True,
                )
                created = True
            await identities.link(
                session,
                user_id=user.id,
                provider=name,
                subject=who.subject,
                email=email,
                actor=Actor("user", user.id),
                via="new_account" if created else "verified_email",
            )
            linked = True
            user_id = user.id
        user = await users.get_user(session, user_id=user_id)
        if user.status != "active":
            raise InvalidCredentials()
        roles, permissions = await rbac.permissions_of(session, user_id=user_id)
        family = await refresh.start_family(session, user_id=user_id, settings=settings.auth)
        await emit(
            session,
            Event(
                action="auth.login.succeeded",
                actor=Actor("user", user_id),
                target_type="user",
                target_id=user_id,
                data={
                    "family_id": family.family_id,
                    "provider": name,
                    "created": created,
                    "linked": linked,
                },
            ),
        )
        return user_id, user.token_generation, roles, permissions, family.token

    user_id, generation, roles, permissions, refresh_token = await transact(runtime.db, work)
    runtime.db.note_write(f"user:{user_id}")
    access, expires_in = await service.issue_user_token(
        runtime, user_id, generation, roles, permissions
    )
    pair = service.TokenPair(access, expires_in, refresh_token, " ".join(sorted(permissions)))
    return Finished("sign_in", spent.redirect_uri, pair, user_id)
