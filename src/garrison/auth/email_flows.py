"""E-mail verification, password reset and invitations: single-use, expiring tokens.

A token is ``got_`` + 256 random bits, sent only in the e-mail and stored as SHA-256.
Redeeming is one conditional UPDATE (``used_at IS NULL AND expires_at > now``), so a token
works once even when two requests race. A reset request answers the same whether or not
the address has an account (no enumeration), and is rate-limited per address and per IP;
failed redemptions count against the IP like failed logins. The mail is queued in the
token's transaction (``garrison.outbox.mail``) and sent by the worker with retries, so no
lock is held while the SMTP server answers and an SMTP outage delays mail, loses none.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from email.message import EmailMessage
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from garrison.auth import users
from garrison.auth.clock import utcnow
from garrison.auth.models import OneTimeToken, User
from garrison.auth.opaque import ONE_TIME_PREFIX, digest, new_secret
from garrison.auth.passwords import check_policy
from garrison.auth.runtime import AuthRuntime
from garrison.context import current_context
from garrison.crypto import keyring_for
from garrison.db.retry import transact
from garrison.errors import BadRequest, ValidationFailed
from garrison.events import Actor, Event, emit, emit_standalone
from garrison.mail import queue as mail_outbox

Purpose = Literal["verify", "reset", "invite"]
_SUBJECTS: dict[str, str] = {
    "verify": "Confirm your e-mail address",
    "reset": "Reset your password",
    "invite": "You are invited to Garrison",
}
_PATHS = {"verify": "verify-email", "reset": "reset-password", "invite": "accept-invite"}


class InvalidOneTimeToken(BadRequest):
    """A verification, reset or invitation token is unknown, used or expired."""

    slug, title = "invalid-one-time-token", "Invalid Or Expired Link"


async def _issue(
    session: AsyncSession,
    *,
    purpose: Purpose,
    email: str,
    user_id: str | None,
    ttl: int,
    role: str | None = None,
) -> str:
    token = new_secret(ONE_TIME_PREFIX)
    now = utcnow()
    session.add(
        OneTimeToken(
            id=str(uuid.uuid4()),
            purpose=purpose,
            user_id=user_id,
            email=email,
            token_hash=digest(token),
            role_name=role,
            expires_at=now + timedelta(seconds=ttl),
            created_at=now,
        )
    )
    await session.flush()
    return token


def _message(
    runtime: AuthRuntime, purpose: Purpose, email: str, token: str, ttl: int
) -> EmailMessage:
    link = f"{runtime.settings.issuer}/{_PATHS[purpose]}?token={token}"
    message = EmailMessage()
    message["To"] = email
    message["Subject"] = _SUBJECTS[purpose]
    message.set_content(
        f"Open this link to continue (it works once, for {ttl // 60} minutes):\n\n{link}\n\n"
        f"Or send this code to the API: {token}\n\n"
        "If you did not ask for this, ignore this message.\n"
    )
    return message


async def _queue(session: AsyncSession, runtime: AuthRuntime, message: EmailMessage) -> None:
    # Sent by the worker once the token's transaction commits, retried while SMTP is away.
    await mail_outbox.queue(session, message=message, keyring=keyring_for(runtime.settings))


async def _redeem(
    session: AsyncSession, *, purpose: Purpose, token: str, email: str | None = None
) -> OneTimeToken | None:
    hashed = digest(token)
    conditions = [
        OneTimeToken.token_hash == hashed,
        OneTimeToken.purpose == purpose,
        OneTimeToken.used_at.is_(None),
        OneTimeToken.expires_at > utcnow(),
    ]
    if email is not None:  # an invitation is for one address; a typo does not burn it
        conditions.append(OneTimeToken.email == email)
    result = await session.execute(
        update(OneTimeToken)
        .where(*conditions)
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)
    if result.rowcount != 1:
        return None
    row: OneTimeToken | None = await session.scalar(
        select(OneTimeToken).where(OneTimeToken.token_hash == hashed)
    )
    return row


async def _failed_redeem(runtime: AuthRuntime, purpose: Purpose) -> InvalidOneTimeToken:
    ip = current_context().ip
    if ip:
        await runtime.lockout.failed(purpose, ip, ip)
    await emit_standalone(
        runtime.db,
        Event(action=f"auth.{purpose}.failed", actor=Actor.anonymous(), outcome="denied"),
    )
    return InvalidOneTimeToken("the link is invalid, used or expired; ask for a new one")


async def send_verification(runtime: AuthRuntime, *, user_id: str) -> bool:
    """Mail a verification link; False when the address is already verified."""
    ttl = runtime.settings.auth.verify_token_ttl

    async def work(session: AsyncSession) -> tuple[str, str] | None:
        user = await users.get_user(session, user_id=user_id)
        if user.email_verified_at is not None:
            return None
        token = await _issue(session, purpose="verify", email=user.email, user_id=user.id, ttl=ttl)
        await emit(
            session,
            Event(
                action="auth.verify.sent",
                actor=Actor("user", user.id),
                target_type="user",
                target_id=user.id,
            ),
        )
        await _queue(session, runtime, _message(runtime, "verify", user.email, token, ttl))
        return user.email, token

    issued = await transact(runtime.db, work)
    return issued is not None


async def verify_email(runtime: AuthRuntime, *, token: str) -> str:
    ip = current_context().ip
    if ip:
        await runtime.lockout.check("verify", ip, ip)

    async def work(session: AsyncSession) -> str | None:
        row = await _redeem(session, purpose="verify", token=token)
        if row is None or row.user_id is None:
            return None
        await users.mark_verified(session, user_id=row.user_id)
        await emit(
            session,
            Event(
                action="auth.email.verified",
                actor=Actor("user", row.user_id),
                target_type="user",
                target_id=row.user_id,
            ),
        )
        return row.user_id

    user_id = await transact(runtime.db, work)
    if user_id is None:
        raise await _failed_redeem(runtime, "verify")
    return user_id


async def request_reset(runtime: AuthRuntime, *, email: str) -> None:
    """Mail a reset link when the address has an active account; the same answer either way."""
    ip = current_context().ip
    try:
        normalised = users.normalise_email(email)
    except ValidationFailed:
        return  # nothing to send to; the answer stays the same
    # Each request counts: a flood of resets for one address or from one IP is cut off.
    await runtime.lockout.check("reset-request", normalised, ip)
    await runtime.lockout.failed("reset-request", normalised, ip)
    ttl = runtime.settings.auth.reset_token_ttl

    async def work(session: AsyncSession) -> str | None:
        user: User | None = await users.find_by_email(session, email=normalised)
        if user is None or user.status != "active":
            return None
        token = await _issue(session, purpose="reset", email=user.email, user_id=user.id, ttl=ttl)
        await emit(
            session,
            Event(
                action="auth.reset.requested",
                actor=Actor.anonymous(),
                target_type="user",
                target_id=user.id,
            ),
        )
        await _queue(session, runtime, _message(runtime, "reset", normalised, token, ttl))
        return token

    await transact(runtime.db, work)


async def reset_password(runtime: AuthRuntime, *, token: str, new_password: str) -> None:
    ip = current_context().ip
    if ip:
        await runtime.lockout.check("reset", ip, ip)
    check_policy(new_password, runtime.settings.auth, pointer="#/new_password")
    new_hash = await runtime.hasher.hash(new_password)

    async def work(session: AsyncSession) -> str | None:
        row = await _redeem(session, purpose="reset", token=token)
        if row is None or row.user_id is None:
            return None
        user = await users.get_user(session, user_id=row.user_id)
        if user.status != "active":
            return None
        await users.set_password(
            session,
            user_id=user.id,
            password_hash=new_hash,
            actor=Actor("user", user.id),
            reason="reset",
        )
        # Proving control of the mailbox also verifies it.
        await users.mark_verified(session, user_id=user.id)
        return user.email

    email = await transact(runtime.db, work)
    if email is None:
        raise await _failed_redeem(runtime, "reset")
    await runtime.lockout.succeeded("account", email)


async def invite(runtime: AuthRuntime, *, email: str, role: str, actor: Actor) -> None:
    normalised = users.normalise_email(email)
    ttl = runtime.settings.auth.verify_token_ttl

    async def work(session: AsyncSession) -> str:
        from garrison.auth import rbac

        await rbac.get_role(session, name=role)
        token = await _issue(
            session, purpose="invite", email=normalised, user_id=None, ttl=ttl, role=role
        )
        await emit(
            session,
            Event(
                action="auth.invite.sent",
                actor=actor,
                target_type="invitation",
                target_id=None,
                data={"role": role},
            ),
        )
        await _queue(session, runtime, _message(runtime, "invite", normalised, token, ttl))
        return token

    await transact(runtime.db, work)


async def accept_invite(runtime: AuthRuntime, *, token: str, email: str, password: str) -> str:
    """Create the invited user; the address must be the invited one."""
    from garrison.auth import service

    ip = current_context().ip
    if ip:
        await runtime.lockout.check("invite", ip, ip)
    normalised = users.normalise_email(email)
    check_policy(password, runtime.settings.auth)
    password_hash = await runtime.hasher.hash(password)

    async def work(session: AsyncSession) -> str | None:
        row = await _redeem(session, purpose="invite", token=token, email=normalised)
        if row is None:
            return None
        user = await users.create_user(
            session,
            email=normalised,
            password_hash=password_hash,
            roles=[row.role_name or service.DEFAULT_ROLE],
            actor=Actor.anonymous(),
            verified=True,
        )
        return user.id

    user_id = await transact(runtime.db, work)
    if user_id is None:
        raise await _failed_redeem(runtime, "invite")
    return user_id
