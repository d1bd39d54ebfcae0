"""Garrison as an OAuth 2.1 authorization server, driven by authlib's OAuth2 client over
ASGI (no sockets) and by a browser's plain HTTP steps: client registration, the login and
consent page, the authorization-code grant with PKCE S256, refresh, RFC 7009 revocation,
RFC 7662 introspection, and the security checks (codes single use, no open redirect, CSRF,
framing, PKCE required)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from authlib.common.security import generate_token
from sqlalchemy import update

from garrison.auth.clock import utcnow
from garrison.auth.oauth.models import AuthorizationCode
from garrison.auth.opaque import digest
from garrison.db.retry import transact
from garrison.settings import Settings
from tests.authkit import PASSWORD, AuthApp, auth_app, bearer
from tests.oauthkit import authlib_client_class, consent, form_of, query_of, register_client

BASE = "http://testserver"
REDIRECT = "http://127.0.0.1:8765/callback"
TOKEN = "/api/v1/auth/token"


@pytest.fixture
async def kit(settings: Settings) -> AsyncIterator[AuthApp]:
    settings.auth.issuer = BASE
    async with auth_app(settings) as app:
        yield app


def _browser(kit: AuthApp) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=kit.running.app, client=("127.0.0.1", 50002))
    return httpx.AsyncClient(transport=transport, base_url=BASE)


def _oauth(kit: AuthApp, client: dict[str, Any], **extra: Any) -> Any:
    transport = httpx.ASGITransport(app=kit.running.app, client=("127.0.0.1", 50003))
    cls = authlib_client_class()
    return cls(
        client_id=client["client_id"],
        client_secret=client.get("client_secret"),
        redirect_uri=REDIRECT,
        scope=extra.pop("scope", "records:read"),
        code_challenge_method="S256",
        token_endpoint_auth_method=extra.pop("auth_method", "none"),
        transport=transport,
        base_url=BASE,
        **extra,
    )


async def _code(kit: AuthApp, oauth: Any, email: str, verifier: str) -> tuple[str, str]:
    url, state = oauth.create_authorization_url(f"{BASE}/oauth/authorize", code_verifier=verifier)
    async with _browser(kit) as browser:
        answer = await consent(browser, url, email=email, password=PASSWORD)
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert location.startswith(REDIRECT + "?")
    params = query_of(location)
    assert params["state"] == state
    assert params["iss"] == BASE  # RFC 9207: mix-up defence for the client
    return location, params["code"]


async def test_authorization_code_flow_with_authlib_end_to_end(kit: AuthApp) -> None:
    client = await register_client(kit, redirect_uris=[REDIRECT], scopes=["records:read", "openid"])
    assert client["client_secret"] is None
    assert client["client_id"].startswith("goc_")
    email = await kit.user(role="admin")  # holds "*": the client still gets only its scope
    verifier = generate_token(64)
    async with _oauth(kit, client) as oauth:
        location, _code_value = await _code(kit, oauth, email, verifier)
        token = await oauth.fetch_token(
            f"{BASE}{TOKEN}", authorization_response=location, code_verifier=verifier
        )
        assert token["token_type"] == "Bearer"
        assert token["scope"] == "records:read"
        assert token["refresh_token"].startswith("grt_")
        probe = await oauth.get("/api/v1/_probe/records")
        assert probe.status_code == 200, probe.text
        assert probe.json()["kind"] == "user"
        # The user is an admin; the token carries only what the client was granted.
        assert (await oauth.get("/api/v1/admin/users")).status_code == 403

        # Refresh: the client's family keeps its scope.
        refreshed = await oauth.refresh_token(f"{BASE}{TOKEN}")
        assert refreshed["scope"] == "records:read"
        access = refreshed["access_token"]

        admin = bearer(await kit.token(role="admin"))
        seen = await kit.client.post(
            "/api/v1/auth/introspect", data={"token": access}, headers=admin
        )
        assert seen.status_code == 200
        assert seen.json()["active"] is True
        assert seen.json()["client_id"] == client["client_id"]
        assert seen.json()["scope"] == "records:read"

        # RFC 7009 revocation by the client, then introspection says inactive.
        revoked = await oauth.revoke_token(f"{BASE}/api/v1/auth/revoke", token=access)
        assert revoked.status_code == 200
        assert (await oauth.get("/api/v1/_probe/records")).status_code == 401
        seen = await kit.client.post(
            "/api/v1/auth/introspect", data={"token": access}, headers=admin
        )
        assert seen.json() == {"active": False}
        refresh = refreshed["refresh_token"]
        seen = await kit.client.post(
            "/api/v1/auth/introspect", data={"token": refresh}, headers=admin
        )
        assert seen.json()["active"] is True
        assert seen.json()["token_type"] == "refresh_token"
        await oauth.revoke_token(
            f"{BASE}/api/v1/auth/revoke", token=refresh, token_type_hint="refresh_token"
        )
        seen = await kit.client.post(
            "/api/v1/auth/introspect", data={"token": refresh}, headers=admin
        )
        assert seen.json() == {"active": False}


async def test_a_code_is_single_use_and_a_second_use_revokes_what_the_first_issued(
    kit: AuthApp,
) -> None:
    client = await register_client(kit, redirect_uris=[REDIRECT], scopes=["records:read"])
    email = await kit.user()
    verifier = generate_token(64)
    async with _oauth(kit, client) as oauth:
        _location, code = await _code(kit, oauth, email, verifier)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
        "client_id": client["client_id"],
    }
    first = await kit.client.post(TOKEN, data=form)
    assert first.status_code == 200, first.text
    tokens = first.json()
    assert (
        await kit.client.get("/api/v1/_probe/records", headers=bearer(tokens["access_token"]))
    ).status_code == 200
    second = await kit.client.post(TOKEN, data=form)
    assert second.status_code == 400
    assert second.json()["error"] == "invalid_grant"
    assert second.headers["content-type"] == "application/problem+json"
    # What the first use issued is revoked: the access token and the refresh family.
    probe = await kit.client.get("/api/v1/_probe/records", headers=bearer(tokens["access_token"]))
    assert probe.status_code == 401
    again = await kit.client.post(
        TOKEN,
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": client["client_id"],
        },
    )
    assert again.json()["error"] == "invalid_grant"


async def test_pkce_is_required_and_checked(kit: AuthApp) -> None:
    client = await register_client(kit, redirect_uris=[REDIRECT], scopes=["records:read"])
    email = await kit.user()
    verifier = generate_token(64)
    async with _browser(kit) as browser:
        base = (
            f"/oauth/authorize?response_type=code&client_id={client['client_id']}"
            f"&redirect_uri={REDIRECT}&state=s1"
        )
        for extra in (
            "",
            "&code_challenge=" + verifier + "&code_challenge_method=plain",
            "&code_challenge=" + "a" * 43,
        ):
            answer = await browser.get(base + extra)
            assert answer.status_code == 303, extra
            params = query_of(answer.headers["location"])
            assert params["error"] == "invalid_request", extra
            assert params["state"] == "s1"
    async with _oauth(kit, client) as oauth:
        _location, code = await _code(kit, oauth, email, verifier)
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": client["client_id"],
        }
        missing = await kit.client.post(TOKEN, data=form)
        assert missing.json()["error"] == "invalid_request"
        wrong = await kit.client.post(TOKEN, data={**form, "code_verifier": generate_token(64)})
        assert wrong.json()["error"] == "invalid_grant"
        # The code was spent by the wrong verifier: the right one no longer redeems it.
        right = await kit.client.post(TOKEN, data={**form, "code_verifier": verifier})
        assert right.json()["error"] == "invalid_grant"


async def test_codes_expire_and_are_bound_to_client_and_redirect_uri(kit: AuthApp) -> None:
    client = await register_client(
        kit, redirect_uris=[REDIRECT, REDIRECT + "2"], scopes=["records:read"]
    )
    other = await register_client(kit, redirect_uris=[REDIRECT], scopes=["records:read"])
    email = await kit.user()
    verifier = generate_token(64)
    async with _oauth(kit, client) as oauth:
        _loc, code = await _code(kit, oauth, email, verifier)
        _loc, stale = await _code(kit, oauth, email, verifier)
        _loc, moved = await _code(kit, oauth, email, verifier)
    form = {"grant_type": "authorization_code", "redirect_uri": REDIRECT, "code_verifier": verifier}
    stolen = await kit.client.post(
        TOKEN, data={**form, "code": code, "client_id": other["client_id"]}
    )
    assert stolen.json()["error"] == "invalid_grant"
    elsewhere = await kit.client.post(
        TOKEN,
        data={
            **form,
            "code": moved,
            "redirect_uri": REDIRECT + "2",
            "client_id": client["client_id"],
        },
    )
    assert elsewhere.json()["error"] == "invalid_grant"

    async def age(session: Any) -> None:
        await session.execute(
            update(AuthorizationCode)
            .where(AuthorizationCode.code_hash == digest(stale))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )

    await transact(kit.runtime.db, age)
    expired = await kit.client.post(
        TOKEN, data={**form, "code": stale, "client_id": client["client_id"]}
    )
    assert expired.json()["error"] == "invalid_grant"
    assert kit.settings.auth.code_ttl <= 60


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example/callback",
        REDIRECT + "/../evil",
        REDIRECT + "?next=https://evil.example",
        REDIRECT.upper(),
        REDIRECT + "#x",
        "//evil.example/callback",
        "",
    ],
)
async def test_no_open_redirect_through_redirect_uri(kit: AuthApp, redirect_uri: str) -> None:
    client = await register_client(
        kit, redirect_uris=[REDIRECT, REDIRECT + "2"], scopes=["records:read"]
    )
    async with _browser(kit) as browser:
        answer = await browser.get(
            "/oauth/authorize",
            params={
                "response_type": "code",
                "client_id": client["client_id"],
                "redirect_uri": redirect_uri,
                "code_challenge": "a" * 43,
                "code_challenge_method": "S256",
            },
        )
    assert answer.status_code == 400
    assert "location" not in answer.headers
    assert answer.headers["content-type"].startswith("text/html")


async def test_unknown_client_is_a_page_not_a_redirect(kit: AuthApp) -> None:
    async with _browser(kit) as browser:
        answer = await browser.get(
            "/oauth/authorize", params={"client_id": "goc_nope", "redirect_uri": REDIRECT}
        )
    assert answer.status_code == 400
    assert "location" not in answer.headers


async def test_the_page_is_csrf_protected_and_cannot_be_framed(kit: AuthApp) -> None:
    client = await register_client(kit, redirect_uris=[REDIRECT], scopes=["records:read"])
    email = await kit.user()
    verifier = generate_token(64)
    async with _oauth(kit, client) as oauth:
        url, _state = oauth.create_authorization_url(
            f"{BASE}/oauth/authorize", code_verifier=verifier
        )
    async with _browser(kit) as browser:
        page = await browser.get(url)
        csp = page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp
        assert "form-action 'self' http://127.0.0.1:8765" in csp
        assert page.headers["x-frame-options"] == "DENY"
        cookie = page.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        action, values = form_of(page.text)
        values.update(email=email, password=PASSWORD, decision="allow")
        forged = await browser.post(action, data={**values, "csrf": "0" * 64})
        assert forged.status_code == 403
        assert "location" not in forged.headers
    async with _browser(kit) as other_browser:  # the form without the browser's cookie
        cross = await other_browser.post(action, data=values)
        assert cross.status_code == 403
        assert "location" not in cross.headers


async def test_wrong_password_shows_the_form_again_and_deny_goes_back(kit: AuthApp) -> None:
    client = await register_client(kit, redirect_uris=[REDIRECT], scopes=["records:read"])
    email = await kit.user()
    verifier = generate_token(64)
    async with _oauth(kit, client) as oauth:
        url, state = oauth.create_authorization_url(
            f"{BASE}/oauth/authorize", code_verifier=verifier
        )
    async with _browser(kit) as browser:
        wrong = await consent(browser, url, email=email, password="not the password")
        assert wrong.status_code == 401
        assert "Wrong e-mail or password" in wrong.text
        assert "not the password" not in wrong.text
        denied = await consent(browser, url, email=email, password="", decision="deny")
    assert denied.status_code == 303
    params = query_of(denied.headers["location"])
    assert params["error"] == "access_denied"
    assert params["state"] == state


async def test_confidential_clients_authenticate(kit: AuthApp) -> None:
    client = await register_client(
        kit, redirect_uris=[REDIRECT], scopes=["records:read"], client_type="confidential"
    )
    assert client["client_secret"].startswith("gcs_")
    email = await kit.user()
    verifier = generate_token(64)
    async with _oauth(kit, client, auth_method="client_secret_basic") as oauth:
        location, code = await _code(kit, oauth, email, verifier)
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        }
        no_secret = await kit.client.post(TOKEN, data={**form, "client_id": client["client_id"]})
        assert no_secret.status_code == 401
        assert no_secret.json()["error"] == "invalid_client"
        bad = await kit.client.post(TOKEN, data=form, auth=(client["client_id"], "gcs_wrong"))
        assert bad.status_code == 401
        token = await oauth.fetch_token(
            f"{BASE}{TOKEN}", authorization_response=location, code_verifier=verifier
        )
    assert token["scope"] == "records:read"
    # A confidential client introspects as a resource server.
    seen = await kit.client.post(
        "/api/v1/auth/introspect",
        data={"token": token["access_token"]},
        auth=(client["client_id"], client["client_secret"]),
    )
    assert seen.json()["active"] is True
    anonymous = await kit.client.post(
        "/api/v1/auth/introspect", data={"token": token["access_token"]}
    )
    assert anonymous.status_code == 401


async def test_metadata_names_the_authorization_server_endpoints(kit: AuthApp) -> None:
    body = (await kit.client.get("/.well-known/oauth-authorization-server")).json()
    assert body["authorization_endpoint"] == f"{BASE}/oauth/authorize"
    assert body["revocation_endpoint"] == f"{BASE}/api/v1/auth/revoke"
    assert body["introspection_endpoint"] == f"{BASE}/api/v1/auth/introspect"
    assert body["code_challenge_methods_supported"] == ["S256"]
    assert "authorization_code" in body["grant_types_supported"]
    assert body["response_types_supported"] == ["code"]


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        (
            {"name": "x", "redirect_uris": ["javascript:alert(1)"], "scopes": []},
            "#/redirect_uris/0",
        ),
        (
            {"name": "x", "redirect_uris": ["http://evil.example/cb"], "scopes": []},
            "#/redirect_uris/0",
        ),
        (
            {"name": "x", "redirect_uris": ["https://a.example/cb#f"], "scopes": []},
            "#/redirect_uris/0",
        ),
        ({"name": "x", "redirect_uris": ["https://a.example/cb"], "scopes": ["nope"]}, "#/scopes"),
    ],
)
async def test_bad_registrations_are_422_naming_the_field(
    kit: AuthApp, body: dict[str, Any], pointer: str
) -> None:
    admin = await kit.token(role="admin")
    answer = await kit.client.post("/api/v1/admin/oauth-clients", json=body, headers=bearer(admin))
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["pointer"] == pointer


async def test_codes_tokens_and_secrets_never_reach_the_logs(
    settings: Settings, log_stream: Any
) -> None:
    settings.auth.issuer = BASE
    async with auth_app(settings) as kit:
        client = await register_client(
            kit, redirect_uris=[REDIRECT], scopes=["records:read"], client_type="confidential"
        )
        email = await kit.user()
        verifier = generate_token(64)
        async with _oauth(kit, client, auth_method="client_secret_post") as oauth:
            location, code = await _code(kit, oauth, email, verifier)
            token = await oauth.fetch_token(
                f"{BASE}{TOKEN}", authorization_response=location, code_verifier=verifier
            )
            await oauth.revoke_token(f"{BASE}/api/v1/auth/revoke", token=token["access_token"])
    logged = log_stream.getvalue()
    assert "auth.oauth.token_issued" in logged  # the log did see the flow
    for secret in (
        code,
        verifier,
        token["access_token"],
        token["refresh_token"],
        client["client_secret"],
        PASSWORD,
    ):
        assert secret not in logged


BAD = ["%00", "%ED%A0%80", "%FF%FE", "a" * 5000, "%27%20or%201%3D1%20--", "%C3%A9%E2%80%AE"]


async def test_bad_input_on_the_authorization_endpoint_is_never_a_500(kit: AuthApp) -> None:
    client = await register_client(kit, redirect_uris=[REDIRECT], scopes=["records:read"])
    good = {
        "response_type": "code",
        "client_id": client["client_id"],
        "redirect_uri": REDIRECT,
        "code_challenge": "a" * 43,
        "code_challenge_method": "S256",
        "scope": "records:read",
        "state": "s",
        "nonce": "n",
    }
    async with _browser(kit) as browser:
        for name in good:
            for value in BAD:
                query = "&".join(f"{k}={value if k == name else v}" for k, v in good.items())
                answer = await browser.get(f"/oauth/authorize?{query}")
                assert answer.status_code < 500, (name, value, answer.text[:300])
                if answer.status_code == 303:  # only ever back to the registered URI
                    assert answer.headers["location"].startswith(REDIRECT + "?")
                else:
                    assert "location" not in answer.headers
        posted = await browser.post(
            "/oauth/authorize",
            content=b"\xff\xfe=\x00&&==",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert posted.status_code < 500
    for path in ("/api/v1/auth/revoke", "/api/v1/auth/introspect", TOKEN):
        for body in ({"token": "\x00" * 10}, {"token": "x" * 10000}, {}):
            answer = await kit.client.post(
                path, data={**body, "grant_type": "authorization_code", "client_id": "goc_x"}
            )
            assert 400 <= answer.status_code < 500, (path, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"


async def test_openid_connect_id_token_userinfo_and_discovery(kit: AuthApp) -> None:
    from joserfc import jwt as jose_jwt
    from joserfc.jwk import KeySet

    from garrison.auth.oauth.oidc import at_hash

    client = await register_client(
        kit, redirect_uris=[REDIRECT], scopes=["records:read", "openid", "email"]
    )
    email = await kit.user()
    verifier = generate_token(64)
    async with _oauth(kit, client, scope="openid email records:read") as oauth:
        url, state = oauth.create_authorization_url(
            f"{BASE}/oauth/authorize", code_verifier=verifier, nonce="nonce-123"
        )
        async with _browser(kit) as browser:
            answer = await consent(browser, url, email=email, password=PASSWORD)
        location = answer.headers["location"]
        assert query_of(location)["state"] == state
        token = await oauth.fetch_token(
            f"{BASE}{TOKEN}", authorization_response=location, code_verifier=verifier
        )
        info = await oauth.get("/api/v1/auth/userinfo")
    jwks = (await kit.client.get("/.well-known/jwks.json")).json()
    decoded = jose_jwt.decode(
        token["id_token"], KeySet.import_key_set(jwks), algorithms=["Ed25519"]
    )
    assert decoded.header["typ"] == "JWT"
    claims = decoded.claims
    assert claims["iss"] == BASE
    assert claims["aud"] == client["client_id"]
    assert claims["nonce"] == "nonce-123"
    assert claims["email"] == email
    assert claims["at_hash"] == at_hash(token["access_token"], "Ed25519")
    assert info.status_code == 200, info.text
    assert info.json() == {"sub": claims["sub"], "email": email, "email_verified": False}
    # An id_token is not an access token.
    refused = await kit.client.get("/api/v1/auth/me", headers=bearer(token["id_token"]))
    assert refused.status_code == 401
    # Without openid, userinfo is refused.
    first_party = bearer(await kit.token())
    assert (await kit.client.get("/api/v1/auth/userinfo", headers=first_party)).status_code == 403
    discovery = (await kit.client.get("/.well-known/openid-configuration")).json()
    assert discovery["userinfo_endpoint"] == f"{BASE}/api/v1/auth/userinfo"
    assert discovery["id_token_signing_alg_values_supported"] == ["Ed25519"]
    assert discovery["authorization_endpoint"] == f"{BASE}/oauth/authorize"


async def test_the_worker_purges_expired_codes_and_states(kit: AuthApp) -> None:
    from sqlalchemy import func, select

    from garrison.auth.oauth import retention
    from garrison.auth.oauth.models import SignInState
    from garrison.worker import standard_jobs

    assert "auth.oauth.purge" in {job.name for job in standard_jobs(kit.runtime.db, kit.settings)}
    client = await register_client(kit, redirect_uris=[REDIRECT], scopes=["records:read"])
    email = await kit.user()
    verifier = generate_token(64)
    async with _oauth(kit, client) as oauth:
        _loc, old = await _code(kit, oauth, email, verifier)
        _loc, fresh = await _code(kit, oauth, email, verifier)
    now = utcnow()

    async def age(session: Any) -> None:
        await session.execute(
            update(AuthorizationCode)
            .where(AuthorizationCode.code_hash == digest(old))
            .values(expires_at=now - timedelta(days=2))
        )
        session.add(
            SignInState(
                state_hash=digest(generate_token(20)),
                purpose="sign_in",
                provider="gone",
                created_at=now - timedelta(hours=1),
                expires_at=now - timedelta(minutes=1),
            )
        )

    await transact(kit.runtime.db, age)
    removed = await retention.purge(kit.runtime.db)
    assert removed["codes"] >= 1
    assert removed["states"] >= 1
    async with kit.runtime.db.read_session() as session:
        left = await session.scalar(
            select(func.count())
            .select_from(AuthorizationCode)
            .where(AuthorizationCode.code_hash.in_([digest(old), digest(fresh)]))
        )
    assert left == 1


async def test_disabling_a_client_ends_its_tokens(kit: AuthApp) -> None:
    client = await register_client(kit, redirect_uris=[REDIRECT], scopes=["records:read"])
    email = await kit.user()
    verifier = generate_token(64)
    async with _oauth(kit, client) as oauth:
        location, _code_value = await _code(kit, oauth, email, verifier)
        token = await oauth.fetch_token(
            f"{BASE}{TOKEN}", authorization_response=location, code_verifier=verifier
        )
        assert (await oauth.get("/api/v1/_probe/records")).status_code == 200
        admin = bearer(await kit.token(role="admin"))
        disabled = await kit.client.post(
            f"/api/v1/admin/oauth-clients/{client['client_id']}/disable", headers=admin
        )
        assert disabled.status_code == 204
        assert (await oauth.get("/api/v1/_probe/records")).status_code == 401
    again = await kit.client.post(
        TOKEN,
        data={
            "grant_type": "refresh_token",
            "refresh_token": token["refresh_token"],
            "client_id": client["client_id"],
        },
    )
    assert again.status_code == 401
    assert again.json()["error"] == "invalid_client"
