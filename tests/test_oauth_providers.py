"""Sign-in with external identity providers, against a real one: panva's oidc-provider on
loopback (tests/idp), the browser's steps as plain HTTP. Garrison runs in-process (ASGI);
the provider is a real server that Garrison reaches over the network (discovery, JWKS, the
code exchange, userinfo)."""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import delete, select, update

from garrison.auth import service
from garrison.auth.errors import ProviderUnavailable, SignInFailed
from garrison.auth.oauth.models import IdentityProvider, SignInState
from garrison.auth.oauth.oidc import ProviderClient, _Cached, at_hash
from garrison.db.retry import transact
from garrison.events import Actor
from garrison.settings import Settings
from tests.authkit import PASSWORD, AuthApp, auth_app, bearer
from tests.idpkit import CLIENT_SECRET, Idp, free_port, running_idp, walk

BASE = "http://testserver"
NAMES = ["idp", "idp2", "plain"]
LANDING = "http://127.0.0.1:8766/signed-in"


@pytest.fixture(scope="module")
def idp() -> Iterator[Idp]:
    with running_idp([f"{BASE}/api/v1/auth/providers/{n}/callback" for n in NAMES]) as server:
        yield server


@asynccontextmanager
async def provider_app(settings: Settings) -> AsyncIterator[AuthApp]:
    """The app; the providers a test configured are removed after it (MariaDB's database
    is shared by the session's tests)."""
    settings.auth.issuer = BASE
    async with auth_app(settings) as app:
        try:
            yield app
        finally:

            async def clean(session: Any) -> None:
                await session.execute(delete(IdentityProvider))

            await transact(app.runtime.db, clean)


@pytest.fixture
async def kit(settings: Settings) -> AsyncIterator[AuthApp]:
    async with provider_app(settings) as app:
        yield app


async def _configure(kit: AuthApp, idp: Idp, name: str = "idp", **extra: Any) -> dict[str, Any]:
    admin = await kit.token(role="admin")
    body = {
        "name": name,
        "kind": "oidc",
        "issuer": idp.issuer,
        "client_id": "garrison",
        "client_secret": CLIENT_SECRET,
        "redirect_uris": [LANDING],
        **extra,
    }
    response = await kit.client.post("/api/v1/auth/providers", json=body, headers=bearer(admin))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _browser(kit: AuthApp) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=kit.running.app, client=("127.0.0.1", 50010))
    return httpx.AsyncClient(transport=transport, base_url=BASE)


async def _sign_in(
    kit: AuthApp,
    browser: httpx.AsyncClient,
    name: str,
    login: str,
    *,
    start: str | None = None,
) -> httpx.Response:
    """From Garrison's authorize URL through the provider's pages to Garrison's callback."""
    first = await browser.get(start or f"/api/v1/auth/providers/{name}/authorize")
    assert first.status_code == 302, first.text
    async with httpx.AsyncClient(timeout=30) as at_idp:
        back = await walk(at_idp, first.headers["location"], login=login, until=BASE)
    return await browser.get(back.removeprefix(BASE))


async def test_a_new_user_signs_in_links_a_second_provider_and_unlinks_the_first(
    kit: AuthApp, idp: Idp
) -> None:
    created = await _configure(kit, idp)
    assert created["has_client_secret"] is True
    assert "client_secret" not in created
    assert created["callback_url"] == f"{BASE}/api/v1/auth/providers/idp/callback"
    await _configure(kit, idp, "idp2", display_name="Second")
    email = f"new-{uuid.uuid4().hex[:8]}@example.com"
    async with _browser(kit) as browser:
        answer = await _sign_in(kit, browser, "idp", email)
        assert answer.status_code == 200, answer.text
        tokens = answer.json()
        assert tokens["token_type"] == "Bearer"
        assert tokens["refresh_token"].startswith("grt_")
    me = await kit.client.get("/api/v1/auth/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200
    assert me.json()["email"] == email
    assert me.json()["email_verified"] is True
    user = bearer(tokens["access_token"])

    # The audit entry of the sign-in names the provider.
    admin = bearer(await kit.token(role="admin"))
    audit = await kit.client.get(
        "/api/v1/audit", params={"action": "auth.login.succeeded", "limit": 200}, headers=admin
    )
    mine = [e for e in audit.json()["items"] if e["target"]["id"] == me.json()["id"]]
    assert mine
    assert mine[0]["data"]["provider"] == "idp"
    assert mine[0]["data"]["created"] is True

    # Link a second provider from a fresh browser session.
    started = await kit.client.post(
        "/api/v1/auth/me/identities", json={"provider": "idp2"}, headers=user
    )
    assert started.status_code == 201, started.text
    url = started.json()["authorization_url"]
    async with _browser(kit) as browser:
        linked = await _sign_in(kit, browser, "idp2", email, start=url.removeprefix(BASE))
        assert linked.status_code == 200, linked.text
        assert linked.json() == {"linked": "idp2"}
        # The ticket was single use.
        again = await browser.get(url.removeprefix(BASE))
        assert again.status_code == 400
    listed = (await kit.client.get("/api/v1/auth/me/identities", headers=user)).json()
    assert sorted(i["provider"] for i in listed) == ["idp", "idp2"]
    first = next(i for i in listed if i["provider"] == "idp")
    second = next(i for i in listed if i["provider"] == "idp2")
    gone = await kit.client.delete(f"/api/v1/auth/me/identities/{first['id']}", headers=user)
    assert gone.status_code == 204
    # The last way in (no password on this account) stays.
    last = await kit.client.delete(f"/api/v1/auth/me/identities/{second['id']}", headers=user)
    assert last.status_code == 409
    assert last.json()["type"].endswith("last-sign-in-method")
    # Signing in through the second provider reaches the same account.
    async with _browser(kit) as browser:
        answer = await _sign_in(kit, browser, "idp2", email)
    again_me = await kit.client.get(
        "/api/v1/auth/me", headers=bearer(answer.json()["access_token"])
    )
    assert again_me.json()["id"] == me.json()["id"]


async def test_generic_oauth2_provider_reads_userinfo(kit: AuthApp, idp: Idp) -> None:
    admin = await kit.token(role="admin")
    body = {
        "name": "plain",
        "kind": "oauth2",
        "authorization_endpoint": f"{idp.issuer}/auth",
        "token_endpoint": f"{idp.issuer}/token",
        "userinfo_endpoint": f"{idp.issuer}/me",
        "client_id": "garrison",
        "client_secret": CLIENT_SECRET,
        "scopes": ["openid", "email"],
        "redirect_uris": [LANDING],
    }
    created = await kit.client.post("/api/v1/auth/providers", json=body, headers=bearer(admin))
    assert created.status_code == 201, created.text
    email = f"plain-{uuid.uuid4().hex[:8]}@example.com"
    async with _browser(kit) as browser:
        answer = await _sign_in(
            kit,
            browser,
            "plain",
            email,
            start=f"/api/v1/auth/providers/plain/authorize?redirect_uri={LANDING}",
        )
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert location.startswith(LANDING + "#")
    fragment = {k: v[0] for k, v in parse_qs(urlsplit(location).fragment).items()}
    me = await kit.client.get("/api/v1/auth/me", headers=bearer(fragment["access_token"]))
    assert me.json()["email"] == email


async def test_state_is_bound_to_the_browser_and_single_use(kit: AuthApp, idp: Idp) -> None:
    await _configure(kit, idp)
    email = f"s-{uuid.uuid4().hex[:8]}@example.com"
    async with _browser(kit) as browser:
        first = await browser.get("/api/v1/auth/providers/idp/authorize")
        async with httpx.AsyncClient(timeout=30) as at_idp:
            back = (
                await walk(at_idp, first.headers["location"], login=email, until=BASE)
            ).removeprefix(BASE)
    # The callback in another browser (no binding cookie, or another one): refused.
    async with _browser(kit) as attacker:
        stolen = await attacker.get(back)
        assert stolen.status_code == 400
        assert stolen.json()["type"].endswith("sign-in-failed")
    # The state was spent by that attempt: the right browser cannot replay it either.
    async with _browser(kit) as browser2:
        browser2.cookies.set("garrison_signin", "x" * 43)
        replay = await browser2.get(back)
        assert replay.status_code == 400
    # A fresh sign-in, whose callback is replayed after it succeeded.
    async with _browser(kit) as browser:
        ok = await _sign_in(kit, browser, "idp", email)
        assert ok.status_code == 200
        missing = await browser.get("/api/v1/auth/providers/idp/callback?code=x")
        assert missing.status_code == 400


async def test_wrong_nonce_from_the_real_provider_is_refused(kit: AuthApp, idp: Idp) -> None:
    await _configure(kit, idp)
    async with _browser(kit) as browser:
        first = await browser.get("/api/v1/auth/providers/idp/authorize")

        async def other_nonce(session: Any) -> None:
            await session.execute(update(SignInState).values(nonce="another-sign-ins-nonce"))

        await transact(kit.runtime.db, other_nonce)
        async with httpx.AsyncClient(timeout=30) as at_idp:
            back = await walk(at_idp, first.headers["location"], login="n@example.com", until=BASE)
        answer = await browser.get(back.removeprefix(BASE))
    assert answer.status_code == 400
    assert "nonce" in answer.json()["detail"]


async def test_unverified_email_never_links_or_creates(kit: AuthApp, idp: Idp) -> None:
    await _configure(kit, idp)
    existing = await kit.user(email="unverified-owner@example.com")
    async with _browser(kit) as browser:
        answer = await _sign_in(kit, browser, "idp", existing)
    assert answer.status_code == 409
    assert answer.json()["type"].endswith("identity-conflict")


async def test_closed_sign_up_links_only_verified_existing_accounts(
    settings: Settings, idp: Idp
) -> None:
    settings.auth.issuer = BASE
    settings.auth.registration = "closed"
    async with provider_app(settings) as kit:
        await _configure(kit, idp)
        async with _browser(kit) as browser:
            stranger = await _sign_in(kit, browser, "idp", f"x-{uuid.uuid4().hex[:6]}@example.com")
        assert stranger.status_code == 403
        assert stranger.json()["type"].endswith("sign-up-closed")
        # An existing account whose own address is not verified is not linked by e-mail:
        # whoever registered it may hold its password (pre-account hijacking).
        unverified = await kit.user()
        async with _browser(kit) as browser:
            refused = await _sign_in(kit, browser, "idp", unverified)
        assert refused.status_code == 409
        assert "not verified" in refused.json()["detail"]
        email = f"v-{uuid.uuid4().hex[:8]}@example.com"
        await service.register(
            kit.runtime, email=email, password=PASSWORD, actor=Actor.system(), verified=True
        )
        async with _browser(kit) as browser:
            answer = await _sign_in(kit, browser, "idp", email)
        assert answer.status_code == 200, answer.text
        me = await kit.client.get("/api/v1/auth/me", headers=bearer(answer.json()["access_token"]))
        assert me.json()["email"] == email


async def test_landing_redirect_is_an_exact_allow_list(kit: AuthApp, idp: Idp) -> None:
    await _configure(kit, idp)
    async with _browser(kit) as browser:
        for bad in ("https://evil.example/", LANDING + "/x", LANDING + "?a=1", "//evil.example"):
            answer = await browser.get(
                "/api/v1/auth/providers/idp/authorize", params={"redirect_uri": bad}
            )
            assert answer.status_code == 422, bad
            assert answer.json()["errors"][0]["parameter"] == "redirect_uri"
            assert "location" not in answer.headers


async def test_a_provider_that_is_down_or_slow_is_a_clear_502(settings: Settings) -> None:
    settings.auth.issuer = BASE
    settings.auth.provider_timeout = 0.5
    hung: list[asyncio.StreamWriter] = []

    async def never_answer(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hung.append(writer)  # reads nothing, answers nothing

    slow = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    slow_port = slow.sockets[0].getsockname()[1]
    down_port = free_port()  # nothing listens there
    async with provider_app(settings) as kit:
        admin = bearer(await kit.token(role="admin"))
        for name, port in (("down", down_port), ("slow", slow_port)):
            created = await kit.client.post(
                "/api/v1/auth/providers",
                json={
                    "name": name,
                    "kind": "oidc",
                    "issuer": f"http://127.0.0.1:{port}",
                    "client_id": "x",
                },
                headers=admin,
            )
            assert created.status_code == 201
            answer = await kit.client.get(f"/api/v1/auth/providers/{name}/authorize")
            assert answer.status_code == 502, answer.text
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.json()["type"].endswith("provider-unavailable")
            page = await kit.client.get(
                f"/api/v1/auth/providers/{name}/authorize", headers={"Accept": "text/html"}
            )
            assert page.status_code == 502
            assert page.headers["content-type"].startswith("text/html")
            assert "Identity Provider Unavailable" in page.text
    for writer in hung:
        writer.close()
    slow.close()
    await slow.wait_closed()


async def test_client_secret_is_sealed_and_never_in_responses_or_logs(
    settings: Settings, idp: Idp, log_stream: io.StringIO
) -> None:
    settings.auth.issuer = BASE
    async with provider_app(settings) as kit:
        created = await _configure(kit, idp)
        admin = bearer(await kit.token(role="admin"))
        listed = await kit.client.get("/api/v1/auth/providers", headers=admin)
        patched = await kit.client.patch(
            "/api/v1/auth/providers/idp", json={"client_secret": CLIENT_SECRET}, headers=admin
        )
        async with _browser(kit) as browser:
            answer = await _sign_in(kit, browser, "idp", f"l-{uuid.uuid4().hex[:6]}@example.com")
        assert answer.status_code == 200
        async with kit.runtime.db.read_session() as session:
            stored = await session.scalar(select(IdentityProvider.client_secret))
    assert stored is not None
    assert stored.startswith("gv1.")
    assert CLIENT_SECRET not in stored
    for text in (str(created), listed.text, patched.text, answer.text, log_stream.getvalue()):
        assert CLIENT_SECRET not in text


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"name": "a", "kind": "oidc", "client_id": "x"}, "#/issuer"),
        ({"name": "a", "kind": "oidc", "issuer": "ftp://x", "client_id": "x"}, "#/issuer"),
        (
            {"name": "a", "kind": "oidc", "issuer": "http://idp.example", "client_id": "x"},
            "#/issuer",
        ),
        ({"name": "a", "kind": "oauth2", "client_id": "x"}, "#/authorization_endpoint"),
        ({"name": "a", "client_id": "x"}, "#/kind"),
        ({"name": "Bad Name", "preset": "google", "client_id": "x"}, "#/name"),
        ({"name": "a", "preset": "myspace", "client_id": "x"}, "#/preset"),
        (
            {"name": "a", "preset": "google", "client_id": "x", "redirect_uris": ["javascript:x"]},
            "#/redirect_uris/0",
        ),
    ],
)
async def test_bad_provider_definitions_are_422_naming_the_field(
    kit: AuthApp, body: dict[str, Any], pointer: str
) -> None:
    admin = bearer(await kit.token(role="admin"))
    answer = await kit.client.post("/api/v1/auth/providers", json=body, headers=admin)
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["pointer"] == pointer


async def test_presets_fill_in_the_provider(kit: AuthApp) -> None:
    admin = bearer(await kit.token(role="admin"))
    expected = {
        "google": ("oidc", "https://accounts.google.com"),
        "microsoft": ("oidc", "https://login.microsoftonline.com/common/v2.0"),
        "gitlab": ("oidc", "https://gitlab.com"),
        "apple": ("oidc", "https://appleid.apple.com"),
        "github": ("oauth2", None),
    }
    for preset, (kind, issuer) in expected.items():
        answer = await kit.client.post(
            "/api/v1/auth/providers",
            json={"name": preset, "preset": preset, "client_id": "id"},
            headers=admin,
        )
        assert answer.status_code == 201, answer.text
        assert (answer.json()["kind"], answer.json()["issuer"]) == (kind, issuer)
    github = (await kit.client.get("/api/v1/auth/providers/github", headers=admin)).json()
    assert github["token_endpoint"] == "https://github.com/login/oauth/access_token"
    user = bearer(await kit.token())
    assert (await kit.client.get("/api/v1/auth/providers", headers=user)).status_code == 403


# -- id_token validation, with keys of our own in the validator's JWKS cache -------------


def _keys() -> tuple[Any, dict[str, Any]]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    return private, {**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}


def _client(settings: Settings, jwk: dict[str, Any]) -> ProviderClient:
    client = ProviderClient(settings.auth)
    client._jwks["https://idp.example/jwks"] = _Cached({"k1": jwt.PyJWK(jwk)}, time.monotonic())
    return client


async def test_id_token_checks(settings: Settings) -> None:
    private, jwk = _keys()
    stranger, _ = _keys()
    client = _client(settings, jwk)
    now = int(time.time())
    good = {
        "iss": "https://idp.example",
        "aud": "garrison",
        "sub": "u1",
        "exp": now + 300,
        "iat": now,
        "nonce": "n1",
        "at_hash": at_hash("access-1", "RS256"),
    }

    def sign(claims: dict[str, Any], key: Any = private, **header: Any) -> str:
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1", **header})

    async def check(token: str) -> dict[str, Any]:
        return await client.validate_id_token(
            token,
            issuer="https://idp.example",
            jwks_uri="https://idp.example/jwks",
            client_id="garrison",
            nonce="n1",
            access_token="access-1",
        )

    assert (await check(sign(good)))["sub"] == "u1"
    header_none = jwt.utils.base64url_encode(b'{"alg":"none","kid":"k1"}').decode()
    body = jwt.utils.base64url_encode(jwt.api_jwt._jwt_global_obj._encode_payload(good)).decode()
    refused = {
        "wrong nonce": sign({**good, "nonce": "n2"}),
        "no nonce": sign({k: v for k, v in good.items() if k != "nonce"}),
        "wrong aud": sign({**good, "aud": "someone-else"}),
        "several aud, no azp": sign({**good, "aud": ["garrison", "other"]}),
        "wrong iss": sign({**good, "iss": "https://evil.example"}),
        "expired": sign({**good, "exp": now - 600, "iat": now - 900}),
        "no exp": sign({k: v for k, v in good.items() if k != "exp"}),
        "key not in the JWKS": sign(good, stranger),
        "unknown kid": jwt.encode(good, private, algorithm="RS256", headers={"kid": "k9"}),
        "wrong at_hash": sign({**good, "at_hash": at_hash("access-2", "RS256")}),
        "alg none": f"{header_none}.{body}.",
        "HS256": jwt.encode(
            good, "secret-secret-secret-secret-32by", algorithm="HS256", headers={"kid": "k1"}
        ),
        "garbage": "not-a-jwt",
    }
    for name, token in refused.items():
        with pytest.raises(SignInFailed):
            await check(token)
        assert name
    await client.close()


async def test_unreachable_jwks_is_provider_unavailable(settings: Settings) -> None:
    client = ProviderClient(settings.auth)
    with pytest.raises(ProviderUnavailable):
        await client.keys(f"http://127.0.0.1:{free_port()}/jwks")
    await client.close()


async def test_secrets_rotate_reseals_provider_secrets(kit: AuthApp, idp: Idp) -> None:
    from garrison import rewrap
    from garrison.auth.oauth.providers import SECRET_PURPOSE, open_secret
    from garrison.crypto import Keyring

    await _configure(kit, idp)
    old = kit.settings.secret_key
    assert old is not None
    ring = Keyring("a-new-master-secret-of-at-least-32-chars", [old.get_secret_value()])
    assert SECRET_PURPOSE in rewrap.registered()
    assert await rewrap.rotate(kit.runtime.db, ring, SECRET_PURPOSE) == 1
    assert await rewrap.rotate(kit.runtime.db, ring, SECRET_PURPOSE) == 0
    async with kit.runtime.db.read_session() as session:
        row = (await session.scalars(select(IdentityProvider))).one()
    assert open_secret(row, Keyring("a-new-master-secret-of-at-least-32-chars")) == CLIENT_SECRET


async def test_a_wrong_pkce_verifier_is_refused_by_the_real_provider(
    kit: AuthApp, idp: Idp
) -> None:
    """The verifier Garrison keeps for the state is what the provider checks: swap it and
    the code exchange fails (the sign-in is refused, not a 500)."""
    from garrison.auth.oauth.signin import VERIFIER_PURPOSE
    from garrison.crypto import keyring_for

    await _configure(kit, idp)
    ring = keyring_for(kit.settings)
    async with _browser(kit) as browser:
        first = await browser.get("/api/v1/auth/providers/idp/authorize")

        async def swap(session: Any) -> None:
            for row in (await session.scalars(select(SignInState))).all():
                row.code_verifier = ring.seal(
                    "another-verifier-" + "x" * 40, purpose=VERIFIER_PURPOSE, context=row.state_hash
                )

        await transact(kit.runtime.db, swap)
        async with httpx.AsyncClient(timeout=30) as at_idp:
            back = await walk(at_idp, first.headers["location"], login="p@example.com", until=BASE)
        answer = await browser.get(back.removeprefix(BASE))
    assert answer.status_code == 400, answer.text
    assert "refused the code" in answer.json()["detail"]


async def test_form_post_providers_answer_with_a_post(kit: AuthApp, idp: Idp) -> None:
    """The Apple preset asks for ``response_mode=form_post``; here pointed at the local
    provider, which answers with an auto-submitting form to the callback."""
    from tests.idpkit import walk_to

    await _configure(kit, idp, "idp", preset="apple", scopes=["openid", "email"])
    email = f"fp-{uuid.uuid4().hex[:8]}@example.com"
    async with _browser(kit) as browser:
        first = await browser.get("/api/v1/auth/providers/idp/authorize")
        assert "response_mode=form_post" in first.headers["location"]
        async with httpx.AsyncClient(timeout=30) as at_idp:
            action, form = await walk_to(at_idp, first.headers["location"], login=email, until=BASE)
        assert form is not None
        assert "code" in form
        answer = await browser.post(action.removeprefix(BASE), data=form)
    assert answer.status_code == 200, answer.text
    me = await kit.client.get("/api/v1/auth/me", headers=bearer(answer.json()["access_token"]))
    assert me.json()["email"] == email
