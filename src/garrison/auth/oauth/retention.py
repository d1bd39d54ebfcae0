"""Removing what the OAuth flows leave behind: sign-in states and link tickets once they
have expired, authorization codes a day after they expired (a second use within that day
still revokes what the first issued; after it, the code is simply unknown). A worker job
(``auth.oauth.purge``) that owns its transaction."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from garrison.auth.clock import utcnow
from garrison.auth.oauth.models import AuthorizationCode, SignInState
from garrison.db.engine import Database
from garrison.db.retry import transact

CODE_KEEP = timedelta(days=1)


async def purge(db: Database) -> dict[str, int]:
    async def work(session: AsyncSession) -> dict[str, int]:
        now = utcnow()
        states = await session.execute(delete(SignInState).where(SignInState.expires_at < now))
        codes = await session.execute(
            delete(AuthorizationCode).where(AuthorizationCode.expires_at < now - CODE_KEEP)
        )
        assert isinstance(states, CursorResult)
        assert isinstance(codes, CursorResult)
        return {"states": int(states.rowcount), "codes": int(codes.rowcount)}

    result: dict[str, int] = await transact(db, work)
    return result
