"""Access tokens as an attacker and as an independent verifier see them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet
from sqlalchemy import select, update

from garrison.auth import keys
from garrison.auth.clock import aware, utcnow
from garrison.auth.models import SigningKey
from garrison.db.retry import transact
from garrison.events import Actor
from garrison.settings import Settings
from tests.authkit import AuthApp, auth_app, bearer
from tests.conftest import make_settings


@pytest.fixture
async def kit(settings: Settings) -> AsyncIterator[AuthApp]:
    async with auth_app(settings) as app:
        yield app


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pad(value: str) -> str:
    return value + "=" * (-len(value) % 4)


def segments(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    head, body, sig = token.split(".")
    return (
        json.loads(base64.urlsafe_b64decode(pad(head))),
        json.loads(base64.urlsafe_b64decode(pad(body))),
        sig,
    )


def compact(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    h = b64(json.dumps(header).encode())
    c = b64(json.dumps(claims).encode())
    return f"{h}.{c}.{b64(signature)}"


# Signed under RFC 9864's fully-specified "Ed25519": joserfc verifies without the warning it
# gives for the deprecated polymorphic "EdDSA" (pytest turns warnings into errors).
async def test_tokens_verify_with_an_independent_library_from_the_jwks_alone(
    kit: AuthApp,
) -> None:
    token = await kit.token()
    jwks = (await kit.client.get("/.well-known/jwks.json")).json()
    for key in jwks["keys"]:
        assert set(key) == {"kty", "crv", "x", "kid", "alg", "use"}  # public parts only
    assert {key["alg"] for key in jwks["keys"]} == {"Ed25519"}
    decoded = jose_jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["Ed25519"])
    assert decoded.header["alg"] == "Ed25519"
    assert decoded.header["typ"] == "at+jwt"
    assert decoded.header["kid"] in {key["kid"] for key in jwks["keys"]}
    registry = jose_jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": kit.settings.issuer},
        aud={"essential": True, "value": "garrison"},
        sub={"essential": True},
        jti={"essential": True},
        client_id={"essential": True, "value": "garrison"},
    )
    registry.validate(decoded.claims)
    claims = decoded.claims
    assert claims["exp"] - claims["iat"] == 900
    assert claims["nbf"] <= claims["iat"]
    assert "records:*" in claims["scope"].split()
    assert claims["roles"] == ["user"]


async def test_well_known_documents_are_cacheable(kit: AuthApp) -> None:
    jwks = await kit.client.get("/.well-known/jwks.json")
    assert jwks.headers["cache-control"] == "public, max-age=300"
    assert jwks.headers["content-type"].startswith("application/jwk-set+json")
    meta = await kit.client.get("/.well-known/oauth-authorization-server")
    assert meta.status_code == 200
    body = meta.json()
    assert body["issuer"] == "http://localhost:3000"
    assert body["token_endpoint"] == "http://localhost:3000/api/v1/auth/token"
    assert body["jwks_uri"] == "http://localhost:3000/.well-known/jwks.json"
    assert "password" not in body["grant_types_supported"]


async def _signed(kit: AuthApp, claims: dict[str, Any], **header: Any) -> str:
    key = await kit.runtime.keyring.signing_key()
    assert key.private is not None
    headers = {"kid": key.kid, "typ": "at+jwt", **header}
    return jwt.encode(claims, key.private, algorithm="Ed25519", headers=headers)


def _forge_hs256(token: str, public_x: str) -> str:
    header, claims, _ = segments(token)
    header["alg"] = "HS256"
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    raw_public = base64.urlsafe_b64decode(public_x + "=" * (-len(public_x) % 4))
    sig = hmac.new(raw_public, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(sig)}"


async def test_forged_tokens_get_401(kit: AuthApp) -> None:
    good = await kit.token()
    header, claims, sig = segments(good)
    public_x = (await kit.client.get("/.well-known/jwks.json")).json()["keys"][0]["x"]
    now = int(time.time())
    attacker = Ed25519PrivateKey.generate()
    attacker_pem = attacker.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    attacker_x = b64(
        attacker.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
    )
    attacker_jwk = {"kty": "OKP", "crv": "Ed25519", "x": attacker_x}
    tampered = dict(claims, roles=["admin"], scope="*")

    forgeries = {
        "alg none": compact({**header, "alg": "none"}, claims),
        "alg None, empty sig": compact({**header, "alg": "None"}, claims),
        "HS256 with the public key": _forge_hs256(good, public_x),
        "tampered payload": f"{good.split('.')[0]}.{b64(json.dumps(tampered).encode())}.{sig}",
        "expired": await _signed(kit, dict(claims, exp=now - 120, iat=now - 1000, nbf=now - 1000)),
        "not yet valid": await _signed(kit, dict(claims, nbf=now + 600, iat=now + 600)),
        "wrong audience": await _signed(kit, dict(claims, aud="someone-else")),
        "wrong issuer": await _signed(kit, dict(claims, iss="https://evil.example")),
        "missing jti": await _signed(kit, {k: v for k, v in claims.items() if k != "jti"}),
        "typ JWT (an ID token, say)": await _signed(kit, claims, typ="JWT"),
        "injected kid": compact({**header, "kid": "../../../../dev/null"}, claims, b"x" * 64),
        "sql in kid": compact({**header, "kid": "' OR '1'='1"}, claims, b"x" * 64),
        "huge kid": compact({**header, "kid": "a" * 5000}, claims, b"x" * 64),
        "kid not a string": compact({**header, "kid": {"x": 1}}, claims, b"x" * 64),
        "unknown kid": compact({**header, "kid": "0" * 32}, claims, b"x" * 64),
        "attacker key via jwk header": jwt.encode(
            claims,
            attacker_pem,
            algorithm="EdDSA",
            headers={"kid": header["kid"], "typ": "at+jwt", "jwk": attacker_jwk},
        ),
        "attacker key via jku": jwt.encode(
            claims,
            attacker_pem,
            algorithm="EdDSA",
            headers={"kid": "attacker", "typ": "at+jwt", "jku": "http://127.0.0.1:9/jwks"},
        ),
        "not a jwt": "definitely.not.a-token",
        "two segments": "abc.def",
        "garbage bytes": "\u00ff\u00fe" * 10,
    }
    for name, token in forgeries.items():
        response = await kit.client.get(
            "/api/v1/auth/me", headers={b"authorization": f"Bearer {token}".encode()}
        )
        assert response.status_code == 401, name
        assert response.headers["content-type"] == "application/problem+json", name
        assert 'error="invalid_token"' in response.headers["www-authenticate"], name
    # The real one still works: the failures above are about the forgeries.
    assert (await kit.client.get("/api/v1/auth/me", headers=bearer(good))).status_code == 200


async def test_leeway_accepts_small_clock_skew(kit: AuthApp) -> None:
    good = await kit.token()
    _header, claims, _ = segments(good)
    now = int(time.time())
    skewed = await _signed(kit, dict(claims, exp=now - 20, iat=now - 900, nbf=now - 900))
    assert (await kit.client.get("/api/v1/auth/me", headers=bearer(skewed))).status_code == 200


async def test_missing_and_wrong_scheme_credentials(kit: AuthApp) -> None:
    none = await kit.client.get("/api/v1/auth/me")
    assert none.status_code == 401
    assert none.headers["www-authenticate"] == 'Bearer realm="garrison"'
    basic = await kit.client.get("/api/v1/auth/me", headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert basic.status_code == 401
    empty = await kit.client.get("/api/v1/auth/me", headers={"Authorization": "Bearer "})
    assert empty.status_code == 401


async def test_key_rotation_publishes_first_and_signs_later(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(tmp_path, database_url=database_url)
    async with auth_app(settings) as kit:
        before = await kit.token()
        old_kid = segments(before)[0]["kid"]
        sealer = kit.runtime.keyring.sealer
        new = await transact(
            kit.runtime.db,
            lambda s: keys.rotate(s, sealer=sealer, settings=settings.auth, actor=Actor.system()),
        )
        await kit.runtime.keyring.reload()
        published = {
            k["kid"] for k in (await kit.client.get("/.well-known/jwks.json")).json()["keys"]
        }
        assert {old_kid, new.kid} <= published
        # Not active yet: the old key keeps signing, and its tokens stay valid.
        after = await kit.token()
        assert segments(after)[0]["kid"] == old_kid
        assert (await kit.client.get("/api/v1/auth/me", headers=bearer(before))).status_code == 200

        # The delay passes: the new key signs; the old one stays published for its tokens.
        async def activate(session: Any) -> None:
            past = utcnow() - timedelta(seconds=1)
            await session.execute(
                update(SigningKey).where(SigningKey.kid == new.kid).values(signs_from=past)
            )
            await session.execute(
                update(SigningKey).where(SigningKey.kid == old_kid).values(retired_at=past)
            )

        await transact(kit.runtime.db, activate)
        await kit.runtime.keyring.reload()
        rotated = await kit.token()
        assert segments(rotated)[0]["kid"] == new.kid
        assert (await kit.client.get("/api/v1/auth/me", headers=bearer(before))).status_code == 200
        async with kit.runtime.db.read_session() as session:
            old = await session.scalar(select(SigningKey).where(SigningKey.kid == old_kid))
        assert old is not None
        assert old.published_until is not None
        lifetime = aware(old.published_until) - aware(new.signs_from)
        assert lifetime.total_seconds() == pytest.approx(
            settings.auth.access_token_ttl + settings.auth.leeway, abs=0.01
        )

        # Once its last token has expired, the old key is unpublished and its tokens fail.
        async def expire(session: Any) -> None:
            await session.execute(
                update(SigningKey)
                .where(SigningKey.kid == old_kid)
                .values(published_until=utcnow() - timedelta(seconds=1))
            )

        await transact(kit.runtime.db, expire)
        await kit.runtime.keyring.reload()
        published = {
            k["kid"] for k in (await kit.client.get("/.well-known/jwks.json")).json()["keys"]
        }
        assert new.kid in published
        assert old_kid not in published
        assert (await kit.client.get("/api/v1/auth/me", headers=bearer(before))).status_code == 401


async def test_private_keys_are_sealed_at_rest(kit: AuthApp) -> None:
    await kit.token()
    async with kit.runtime.db.read_session() as session:
        rows = (await session.scalars(select(SigningKey))).all()
    assert rows
    for row in rows:
        key = await kit.runtime.keyring.signing_key()
        assert key.private is not None
        der = key.private.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        assert base64.b64encode(der).decode() not in row.private_key
        assert b"PRIVATE" not in row.private_key.encode()


async def test_a_verified_token_is_remembered_only_while_it_and_its_key_are_valid(
    kit: AuthApp,
) -> None:
    """Each token's signature is checked once per process; the remembered claims stop
    counting when the token expires or its key is no longer published."""
    from garrison.auth import tokens

    runtime = kit.runtime
    keyring, settings = runtime.keyring, runtime.settings
    token = await kit.token()
    claims = await tokens.verify(token, keyring, settings)
    assert keyring.recall(token, leeway=settings.auth.leeway) == claims
    assert (await kit.client.get("/api/v1/auth/me", headers=bearer(token))).status_code == 200

    # The same text with one signature byte changed is another token: verified afresh.
    head, body, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    forged = f"{head}.{body}.{flipped}"
    assert keyring.recall(forged, leeway=settings.auth.leeway) is None
    response = await kit.client.get("/api/v1/auth/me", headers=bearer(forged))
    assert response.status_code == 401

    # Expired (as far as the remembered entry goes): forgotten, and verified again.
    kid = jwt.get_unverified_header(token)["kid"]
    keyring.remember(token, kid=kid, expires=int(time.time()) - 3600, claims=claims)
    assert keyring.recall(token, leeway=settings.auth.leeway) is None

    # A key no longer published: its tokens are not taken from memory.
    keyring.remember(token, kid="retired-kid", expires=claims.exp, claims=claims)
    assert keyring.recall(token, leeway=settings.auth.leeway) is None


async def test_eddsa_tokens_of_keys_made_before_rfc_9864_are_accepted_until_they_expire(
    kit: AuthApp,
) -> None:
    """A key created under the old name keeps verifying ``alg: EdDSA`` tokens (signed before
    the upgrade); a key created since accepts only ``Ed25519``; expiry still applies."""
    good = await kit.token()
    _header, claims, _sig = segments(good)
    key = await kit.runtime.keyring.signing_key()
    assert key.private is not None
    headers = {"kid": key.kid, "typ": "at+jwt"}
    legacy = jwt.encode(claims, key.private, algorithm="EdDSA", headers=headers)
    me = await kit.client.get("/api/v1/auth/me", headers=bearer(legacy))
    assert me.status_code == 401  # a key made as Ed25519 never signed an EdDSA token

    async def make_legacy(session: Any) -> None:
        await session.execute(
            update(SigningKey).where(SigningKey.kid == key.kid).values(alg="EdDSA")
        )

    await transact(kit.runtime.keyring.db, make_legacy)
    await kit.runtime.keyring.reload()
    me = await kit.client.get("/api/v1/auth/me", headers=bearer(legacy))
    assert me.status_code == 200, me.text
    now = int(time.time())
    expired = jwt.encode(
        dict(claims, exp=now - 120, iat=now - 1000, nbf=now - 1000),
        key.private,
        algorithm="EdDSA",
        headers=headers,
    )
    assert (await kit.client.get("/api/v1/auth/me", headers=bearer(expired))).status_code == 401
    jwks = (await kit.client.get("/.well-known/jwks.json")).json()
    assert {k["alg"] for k in jwks["keys"]} == {"Ed25519"}  # published under the new name
    # New tokens from the same key are signed as Ed25519.
    fresh = await kit.token()
    assert segments(fresh)[0]["alg"] == "Ed25519"
