"""OAuth speed: the authorization server's code exchange against the refresh grant, and
what Garrison's provider callback adds to the provider's own latency.

    python -m bench.oauth [--rounds 200] [--sign-ins 20]

In-process over ASGI (SQLite in a temporary directory), both grants interleaved in the same
run so the ratio holds when absolute numbers drift. The callback part runs panva's
oidc-provider from tests/idp on loopback (needs node/npm): the time Garrison spends in the
callback outside its calls to the provider (token endpoint, userinfo) is reported (discovery and
JWKS come from the cache after the first sign-in).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from garrison.app import create_app
from garrison.auth import service
from garrison.auth.oauth import clients, server
from garrison.auth.runtime import AuthRuntime
from garrison.db import migrate
from garrison.db.retry import transact
from garrison.events import Actor
from garrison.log import configure_logging
from garrison.runtime import runtime_of
from garrison.settings import load_settings

PASSWORD = "correct horse battery staple"
REDIRECT = "http://127.0.0.1:9/cb"
BASE = "http://bench"


async def _grants(app: Any, client: httpx.AsyncClient, rounds: int) -> dict[str, float]:
    auth = runtime_of(app).get(AuthRuntime)
    user_id = await service.register(
        auth, email="bench@example.com", password=PASSWORD, actor=Actor.system()
    )

    async def register(session: AsyncSession) -> Any:
        row, _ = await clients.create_client(
            session,
            name="bench",
            client_type="public",
            redirect_uris=[REDIRECT],
            scopes=["records:read"],
            first_party=False,
            actor=Actor.system(),
        )
        return row

    oauth_client = await transact(auth.db, register)
    verifier = secrets.token_urlsafe(48)
    login = (
        await client.post(
            "/api/v1/auth/login", json={"email": "bench@example.com", "password": PASSWORD}
        )
    ).json()
    refresh_token = login["refresh_token"]
    code_times: list[float] = []
    refresh_times: list[float] = []
    for _ in range(rounds):

        async def issue(session: AsyncSession) -> str:
            return await server.create_code(
                session,
                runtime=auth,
                client=oauth_client,
                user_id=user_id,
                redirect_uri=REDIRECT,
                scope=["records:read"],
                code_challenge=server.s256(verifier),
                nonce=None,
            )

        code = await transact(auth.db, issue)  # the browser's part: not timed
        started = time.perf_counter()
        answer = await client.post(
            "/api/v1/auth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT,
                "code_verifier": verifier,
                "client_id": oauth_client.client_id,
            },
        )
        code_times.append(time.perf_counter() - started)
        assert answer.status_code == 200, answer.text
        started = time.perf_counter()
        answer = await client.post(
            "/api/v1/auth/token",
            data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        )
        refresh_times.append(time.perf_counter() - started)
        assert answer.status_code == 200, answer.text
        refresh_token = answer.json()["refresh_token"]
    code_rate = 1 / statistics.median(code_times)
    refresh_rate = 1 / statistics.median(refresh_times)
    return {
        "code_per_s": code_rate,
        "refresh_per_s": refresh_rate,
        "ratio": code_rate / refresh_rate,
    }


async def _callbacks(app: Any, client: httpx.AsyncClient, sign_ins: int) -> dict[str, float]:
    from tests.idpkit import CLIENT_SECRET, running_idp, walk

    auth = runtime_of(app).get(AuthRuntime)
    admin_email = "admin-bench@example.com"
    await service.register(
        auth, email=admin_email, password=PASSWORD, roles=["admin"], actor=Actor.system()
    )
    admin = (
        await client.post("/api/v1/auth/login", json={"email": admin_email, "password": PASSWORD})
    ).json()
    headers = {"Authorization": f"Bearer {admin['access_token']}"}
    spent: list[float] = []
    original = auth.providers.exchange

    async def timed_exchange(*args: Any, **kwargs: Any) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            return await original(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - started)

    original_userinfo = auth.providers.userinfo

    async def timed_userinfo(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await original_userinfo(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - started)

    # The provider's own latency: its token endpoint, and its userinfo where e-mail is read.
    auth.providers.exchange = timed_exchange  # type: ignore[method-assign]
    auth.providers.userinfo = timed_userinfo  # type: ignore[method-assign]
    overheads: list[float] = []
    with running_idp([f"{BASE}/api/v1/auth/providers/idp/callback"]) as idp:
        created = await client.post(
            "/api/v1/auth/providers",
            json={
                "name": "idp",
                "kind": "oidc",
                "issuer": idp.issuer,
                "client_id": "garrison",
                "client_secret": CLIENT_SECRET,
            },
            headers=headers,
        )
        assert created.status_code == 201, created.text
        for i in range(sign_ins + 1):
            client.cookies.clear()
            first = await client.get("/api/v1/auth/providers/idp/authorize")
            async with httpx.AsyncClient(timeout=30) as at_idp:
                back = await walk(
                    at_idp, first.headers["location"], login=f"u{i}@example.com", until=BASE
                )
            spent.clear()
            started = time.perf_counter()
            answer = await client.get(back.removeprefix(BASE))
            total = time.perf_counter() - started
            assert answer.status_code == 200, answer.text
            if i:  # the first one fills the discovery and JWKS caches
                overheads.append(total - sum(spent))
    return {
        "callback_overhead_ms_median": statistics.median(overheads) * 1000,
        "callback_overhead_ms_max": max(overheads) * 1000,
    }


async def main(rounds: int, sign_ins: int) -> None:
    tmp = Path(tempfile.mkdtemp())
    settings = load_settings(
        _env_file=None,
        data_dir=tmp,
        auth={"lockout_threshold": 10**6, "lockout_ip_threshold": 10**6, "issuer": BASE},
        log={"level": "error"},
    )
    configure_logging(settings)
    await migrate.upgrade(settings.db_url, settings.db)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 1))
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            grants = await _grants(app, client, rounds)
            print(
                f"code exchange {grants['code_per_s']:.0f}/s,"
                f" refresh {grants['refresh_per_s']:.0f}/s,"
                f" ratio {grants['ratio']:.2f}x (target >= 0.5x)"
            )
            if sign_ins:
                callbacks = await _callbacks(app, client, sign_ins)
                print(
                    "callback overhead beyond the provider's own calls: median"
                    f" {callbacks['callback_overhead_ms_median']:.1f} ms,"
                    f" max {callbacks['callback_overhead_ms_max']:.1f} ms (target < 50 ms)"
                )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--sign-ins", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.sign_ins))
