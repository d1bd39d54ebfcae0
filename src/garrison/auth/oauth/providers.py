"""External identity providers, configured by administrators: generic OpenID Connect (by
issuer: discovery, JWKS, ``id_token``), generic OAuth2 (authorize, token and userinfo
URLs), and presets that fill those in for Google, Microsoft, GitLab, Apple (OpenID Connect)
and GitHub (OAuth2). Client secrets are sealed at rest (``garrison.crypto``) and never
shown again."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from garrison import rewrap
from garrison.auth.clock import utcnow
from garrison.auth.oauth.clients import check_redirect_uri
from garrison.auth.oauth.models import IdentityProvider
from garrison.crypto import Keyring
from garrison.errors import Conflict, NotFound, ValidationFailed
from garrison.events import Actor, Event, emit

SECRET_PURPOSE = "auth.provider.secret"  # noqa: S105 - a key-derivation label


@dataclass(frozen=True)
class Preset:
    kind: str
    display_name: str
    issuer: str | None = None
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    userinfo_endpoint: str | None = None
    scopes: list[str] = field(default_factory=list)
    emails_endpoint: str | None = None  # GitHub: verified addresses are listed apart
    form_post: bool = False  # Apple: the callback is a cross-site POST (response_mode)


PRESETS: dict[str, Preset] = {
    "google": Preset(
        "oidc",
        "Google",
        issuer="https://accounts.google.com",
        scopes=["openid", "email", "profile"],
    ),
    # A tenant's own issuer (…/<tenant id>/v2.0) is what id_tokens carry; set it as issuer.
    "microsoft": Preset(
        "oidc",
        "Microsoft",
        issuer="https://login.microsoftonline.com/common/v2.0",
        scopes=["openid", "email", "profile"],
    ),
    "gitlab": Preset(
        "oidc", "GitLab", issuer="https://gitlab.com", scopes=["openid", "email", "profile"]
    ),
    "apple": Preset(
        "oidc",
        "Apple",
        issuer="https://appleid.apple.com",
        scopes=["openid", "email", "name"],
        form_post=True,
    ),
    "github": Preset(
        "oauth2",
        "GitHub",
        authorization_endpoint="https://github.com/login/oauth/authorize",
        token_endpoint="https://github.com/login/oauth/access_token",  # noqa: S106
        userinfo_endpoint="https://api.github.com/user",
        scopes=["read:user", "user:email"],
        emails_endpoint="https://api.github.com/user/emails",
    ),
}


def _invalid(pointer: str, detail: str) -> ValidationFailed:
    return ValidationFailed(detail, errors=[{"pointer": pointer, "detail": detail}])


def check_url(value: str | None, pointer: str) -> str | None:
    """https, or http on a loopback address (a development or test provider)."""
    if value is None:
        return None
    parts = urlsplit(value)
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.fragment:
        raise _invalid(pointer, "an absolute https URL without a fragment")
    if parts.scheme == "http" and not loopback:
        raise _invalid(pointer, "http is allowed for loopback addresses only; use https")
    if any(ord(ch) < 33 or ord(ch) > 126 for ch in value):
        raise _invalid(pointer, "a URL is printable ASCII")
    return value.rstrip("/") if pointer == "#/issuer" else value


def form_post(row: IdentityProvider) -> bool:
    preset = PRESETS.get(row.preset or "")
    return preset is not None and preset.form_post


def callback_url(issuer: str, name: str) -> str:
    return f"{issuer}/api/v1/auth/providers/{name}/callback"


def open_secret(row: IdentityProvider, keyring: Keyring) -> str | None:
    if row.client_secret is None:
        return None
    return keyring.open(row.client_secret, purpose=SECRET_PURPOSE, context=row.name).decode()


def _apply(row: IdentityProvider, values: dict[str, Any], keyring: Keyring) -> None:
    for name in ("display_name", "client_id", "enabled"):
        if values.get(name) is not None:
            setattr(row, name, values[name])
    if values.get("scopes") is not None:
        scopes = [s for s in values["scopes"] if isinstance(s, str)]
        if any(not s or len(s) > 128 or " " in s for s in scopes):
            raise _invalid("#/scopes", "scopes are non-empty words without spaces")
        row.scopes = scopes
    if values.get("redirect_uris") is not None:
        row.redirect_uris = [
            check_redirect_uri(uri, f"#/redirect_uris/{i}")
            for i, uri in enumerate(values["redirect_uris"])
        ]
    if values.get("client_secret") is not None:
        secret = values["client_secret"]
        row.client_secret = keyring.seal(secret, purpose=SECRET_PURPOSE, context=row.name)


async def create_provider(
    session: AsyncSession, *, values: dict[str, Any], keyring: Keyring, actor: Actor
) -> IdentityProvider:
    name = values["name"]
    preset = PRESETS.get(values.get("preset") or "")
    kind = values.get("kind") or (preset.kind if preset else None)
    if kind is None:
        raise _invalid("#/kind", "kind is required without a preset: oidc or oauth2")

    def pick(key: str) -> str | None:
        given = values.get(key)
        return given if given is not None else (getattr(preset, key) if preset else None)

    issuer = check_url(pick("issuer"), "#/issuer")
    endpoints = {
        key: check_url(pick(key), f"#/{key}")
        for key in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint")
    }
    if kind == "oidc" and issuer is None:
        raise _invalid("#/issuer", "an OpenID Connect provider needs its issuer URL")
    if kind == "oauth2":
        for key in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint"):
            if endpoints[key] is None:
                raise _invalid(f"#/{key}", f"an OAuth2 provider needs {key}")
    if await session.get(IdentityProvider, name) is not None:
        raise Conflict(f"a provider named {name!r} exists", pointer="#/name")
    now = utcnow()
    row = IdentityProvider(
        name=name,
        kind=kind,
        preset=values.get("preset"),
        display_name=values.get("display_name") or (preset.display_name if preset else name),
        issuer=issuer if kind == "oidc" else None,
        client_id=values["client_id"],
        scopes=list(preset.scopes) if preset else (["openid", "email"] if kind == "oidc" else []),
        redirect_uris=[],
        enabled=True,
        created_at=now,
        updated_at=now,
        **endpoints,
    )
    _apply(row, {**values, "display_name": None}, keyring)
    session.add(row)
    await session.flush()
    await emit(
        session,
        Event(
            action="auth.provider.created",
            actor=actor,
            target_type="identity_provider",
            target_id=name,
            data={"kind": kind, "preset": row.preset, "issuer": row.issuer},
        ),
    )
    return row


async def update_provider(
    session: AsyncSession, *, name: str, values: dict[str, Any], keyring: Keyring, actor: Actor
) -> IdentityProvider:
    row = await get_provider(session, name=name)
    _apply(row, values, keyring)
    row.updated_at = utcnow()
    await session.flush()
    changed = sorted(key for key, value in values.items() if value is not None)
    await emit(
        session,
        Event(
            action="auth.provider.updated",
            actor=actor,
            target_type="identity_provider",
            target_id=name,
            data={"fields": changed},
        ),
    )
    return row


async def delete_provider(session: AsyncSession, *, name: str, actor: Actor) -> None:
    row = await get_provider(session, name=name)
    await session.delete(row)
    await session.flush()
    await emit(
        session,
        Event(
            action="auth.provider.deleted",
            actor=actor,
            target_type="identity_provider",
            target_id=name,
        ),
    )


async def list_providers(session: AsyncSession) -> list[IdentityProvider]:
    rows = await session.scalars(select(IdentityProvider).order_by(IdentityProvider.name))
    return list(rows.all())


async def get_provider(session: AsyncSession, *, name: str) -> IdentityProvider:
    row = await session.get(IdentityProvider, name[:64])
    if row is None:
        raise NotFound("no such identity provider")
    return row


async def rewrap_secrets(session: AsyncSession, keyring: Keyring) -> int:
    """Re-seal client secrets made under an older master key (``garrison secrets rotate``)."""
    changed = 0
    for row in await list_providers(session):
        if row.client_secret is not None and keyring.needs_rewrap(row.client_secret):
            row.client_secret = keyring.rewrap(
                row.client_secret, purpose=SECRET_PURPOSE, context=row.name
            )
            changed += 1
    await session.flush()
    return changed


rewrap.register(SECRET_PURPOSE, rewrap_secrets)
