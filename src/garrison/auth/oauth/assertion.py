"""What a provider says about the user: its endpoints (from discovery for OpenID Connect),
and the subject, e-mail address and whether it is verified, read from the validated
``id_token`` (and userinfo where the address is only there) or, for OAuth2 providers, from
userinfo (GitHub: its verified primary address)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from garrison.auth.errors import ProviderUnavailable, SignInFailed
from garrison.auth.oauth import providers
from garrison.auth.oauth.models import IdentityProvider
from garrison.auth.runtime import AuthRuntime


@dataclass(frozen=True)
class Endpoints:
    authorization: str
    token: str
    userinfo: str | None
    jwks_uri: str | None
    issuer: str | None


async def endpoints_of(runtime: AuthRuntime, row: IdentityProvider) -> Endpoints:
    if row.kind == "oidc":
        assert row.issuer is not None
        doc = await runtime.providers.discover(row.issuer)
        return Endpoints(
            authorization=doc["authorization_endpoint"],
            token=doc["token_endpoint"],
            userinfo=doc.get("userinfo_endpoint"),
            jwks_uri=doc["jwks_uri"],
            issuer=row.issuer,
        )
    assert row.authorization_endpoint is not None
    assert row.token_endpoint is not None
    return Endpoints(
        row.authorization_endpoint, row.token_endpoint, row.userinfo_endpoint, None, None
    )


@dataclass(frozen=True)
class Asserted:
    subject: str
    email: str | None
    verified: bool


def _verified(value: Any) -> bool:
    return value is True or value == "true"  # some providers send the string


async def _github_email(runtime: AuthRuntime, access_token: str) -> tuple[str | None, bool]:
    url = providers.PRESETS["github"].emails_endpoint
    assert url is not None
    listed = await runtime.providers.userinfo(url, access_token)
    for item in listed if isinstance(listed, list) else []:
        if isinstance(item, dict) and item.get("primary") and isinstance(item.get("email"), str):
            return item["email"], _verified(item.get("verified"))
    return None, False


async def asserted(
    runtime: AuthRuntime,
    row: IdentityProvider,
    found: Endpoints,
    tokens: dict[str, Any],
    nonce: str | None,
) -> Asserted:
    access = tokens["access_token"]
    if row.kind == "oidc":
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise SignInFailed("the OpenID Connect provider sent no id_token")
        assert found.issuer is not None
        assert found.jwks_uri is not None
        assert nonce is not None
        claims = await runtime.providers.validate_id_token(
            id_token,
            issuer=found.issuer,
            jwks_uri=found.jwks_uri,
            client_id=row.client_id,
            nonce=nonce,
            access_token=access,
        )
        email, verified = claims.get("email"), _verified(claims.get("email_verified"))
        if email is None and found.userinfo:  # some providers put e-mail in userinfo only
            info = await runtime.providers.userinfo(found.userinfo, access)
            if isinstance(info, dict) and info.get("sub") == claims["sub"]:
                email, verified = info.get("email"), _verified(info.get("email_verified"))
        return Asserted(claims["sub"], email if isinstance(email, str) else None, verified)
    assert found.userinfo is not None
    info = await runtime.providers.userinfo(found.userinfo, access)
    if not isinstance(info, dict):
        raise ProviderUnavailable("the provider's userinfo is not an object")
    subject = info.get("sub", info.get("id"))
    if not isinstance(subject, str | int) or isinstance(subject, bool) or subject == "":
        raise SignInFailed("the provider did not name the account")
    email, verified = info.get("email"), _verified(info.get("email_verified"))
    if row.preset == "github":
        email, verified = await _github_email(runtime, access)
    return Asserted(str(subject), email if isinstance(email, str) else None, verified)
