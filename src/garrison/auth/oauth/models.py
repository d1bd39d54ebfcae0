"""Tables of the OAuth part of the auth domain. Client secrets are stored as SHA-256 (they
carry 256 random bits); provider client secrets are sealed (``garrison.crypto``, purpose
``auth.provider.secret``) because Garrison must send them; codes, states and link tickets
are stored as SHA-256 of the value the browser holds."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from garrison.auth.models import Timestamp
from garrison.db.base import Base


class OAuthClient(Base):
    """A client of Garrison's authorization server (a third-party or single-page app)."""

    __tablename__ = "auth_oauth_clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    client_type: Mapped[str] = mapped_column(String(16))  # public | confidential
    secret_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    redirect_uris: Mapped[list[str]] = mapped_column(JSON)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    first_party: Mapped[bool] = mapped_column(Boolean, default=False)  # no consent page
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class AuthorizationCode(Base):
    """An authorization code: single use, short-lived, bound to the client, the redirect
    URI and the PKCE challenge. What it issued is kept so a second use can revoke it."""

    __tablename__ = "auth_oauth_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("auth_users.id", ondelete="CASCADE"), index=True
    )
    redirect_uri: Mapped[str] = mapped_column(String(2048))
    scope: Mapped[list[str]] = mapped_column(JSON)
    code_challenge: Mapped[str] = mapped_column(String(128))
    nonce: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    expires_at: Mapped[datetime] = mapped_column(Timestamp, index=True)
    used_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    family_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    access_jti: Mapped[str | None] = mapped_column(String(64), nullable=True)
    access_expires_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)


class IdentityProvider(Base):
    """An external identity provider users may sign in with (OpenID Connect or OAuth2)."""

    __tablename__ = "auth_identity_providers"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # oidc | oauth2
    preset: Mapped[str | None] = mapped_column(String(32), nullable=True)
    display_name: Mapped[str] = mapped_column(String(128))
    issuer: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    authorization_endpoint: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    token_endpoint: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    userinfo_endpoint: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    client_id: Mapped[str] = mapped_column(String(255))
    client_secret: Mapped[str | None] = mapped_column(Text, nullable=True)  # sealed
    scopes: Mapped[list[str]] = mapped_column(JSON)
    redirect_uris: Mapped[list[str]] = mapped_column(JSON)  # where the browser may land
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class Identity(Base):
    """A user's account at a provider (``subject`` is the provider's stable id for it)."""

    __tablename__ = "auth_identities"
    __table_args__ = (UniqueConstraint("provider", "subject"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    provider: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("auth_users.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    last_used_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)


class SignInState(Base):
    """One sign-in through a provider, from the redirect out to the callback: bound to the
    browser (a cookie's hash), single use, short-lived; holds the PKCE verifier (sealed)
    and the OIDC nonce. A row with ``purpose = 'ticket'`` is a link ticket: a signed-in
    user's single-use permission to start linking a provider in the browser."""

    __tablename__ = "auth_oauth_states"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16))  # sign_in | link | ticket
    provider: Mapped[str] = mapped_column(String(64))
    browser_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    code_verifier: Mapped[str | None] = mapped_column(Text, nullable=True)  # sealed
    nonce: Mapped[str | None] = mapped_column(String(64), nullable=True)
    redirect_uri: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    user_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("auth_users.id", ondelete="CASCADE"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    expires_at: Mapped[datetime] = mapped_column(Timestamp, index=True)
    used_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
