"""Auth errors, as subclasses of Garrison's tree (so every one is problem+json).

Unauthorized
├── InvalidCredentials     401  wrong e-mail or password (one answer for both)
└── InvalidToken           401  missing, forged, expired or revoked bearer credential
Forbidden
├── InsufficientScope      403  authenticated, but without the permission
├── AccountDisabled        403
└── SignUpClosed           403  a provider's new identity while registration is not open
Conflict
├── IdentityConflict       409  the identity belongs to another account, or cannot be linked
└── LastSignInMethod       409  unlinking would leave the account without a way in
TooManyRequests
└── LockedOut              429  brute-force lockout, with Retry-After
BadRequest
├── OAuthError             400/401  RFC 6749 token-endpoint errors (``error`` member kept)
└── SignInFailed           400  a provider sign-in refused (state, PKCE, id_token, the code)
ProviderUnavailable        502  an identity provider down, slow or answering nonsense
ValidationFailed
└── WeakPassword           422
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from garrison.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    GarrisonError,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)

REALM = "garrison"


class InvalidCredentials(Unauthorized):
    """The e-mail and password (or client secret) do not match."""

    slug, title = "invalid-credentials", "Invalid Credentials"

    def __init__(self) -> None:
        super().__init__("the e-mail address or password is wrong")


class InvalidToken(Unauthorized):
    """The access token is malformed, expired, revoked or not ours."""

    slug, title = "invalid-token", "Invalid Token"

    def __init__(self, detail: str = "the access token is invalid", *, presented: bool = True):
        # RFC 6750 §3.1: no error code when the request carried no credential at all.
        challenge = f'Bearer realm="{REALM}"'
        if presented:
            challenge += ', error="invalid_token"'
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class InsufficientScope(Forbidden):
    """The credential lacks the permission or scope the operation needs."""

    slug, title = "insufficient-scope", "Insufficient Scope"

    def __init__(self, permission: str) -> None:
        super().__init__(
            f"this needs the permission {permission!r}",
            headers={
                "WWW-Authenticate": (
                    f'Bearer realm="{REALM}", error="insufficient_scope", scope="{permission}"'
                )
            },
            required=permission,
        )


class AccountDisabled(Forbidden):
    """The account exists but is disabled."""

    slug, title = "account-disabled", "Account Disabled"


class LockedOut(TooManyRequests):
    """Too many failed attempts: the account or client is locked for a while."""

    slug, title = "locked-out", "Too Many Failed Attempts"

    def __init__(self, retry_after: float) -> None:
        seconds = max(1, math.ceil(retry_after))
        super().__init__(
            f"too many failed attempts; try again in {seconds} s",
            headers={"Retry-After": str(seconds)},
            retry_after=seconds,
        )


class OAuthError(BadRequest):
    """An RFC 6749 §5.2 error; the body keeps ``error`` and ``error_description``."""

    slug, title = "oauth-error", "OAuth Error"

    def __init__(
        self,
        error: str,
        description: str,
        *,
        status: int = 400,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(description, headers=headers, error=error, error_description=description)
        self.status = status  # type: ignore[misc]


class WeakPassword(ValidationFailed):
    """The password is too short, too common or too like the account's e-mail."""

    slug, title = "weak-password", "Password Not Accepted"

    def __init__(self, reason: str, pointer: str = "#/password") -> None:
        super().__init__(reason, errors=[{"pointer": pointer, "detail": reason}])


class SignInFailed(BadRequest):
    """A sign-in through an identity provider was refused (state, code, id_token)."""

    slug, title = "sign-in-failed", "Sign-In Failed"


class ProviderUnavailable(GarrisonError):
    """An identity provider did not answer in time, or answered something unusable."""

    status = 502
    slug, title = "provider-unavailable", "Identity Provider Unavailable"


class SignUpClosed(Forbidden):
    """A provider identity without an account, while registration is not open."""

    slug, title = "sign-up-closed", "Sign-Up Closed"


class IdentityConflict(Conflict):
    """The provider identity is linked to another account, or cannot be linked to this one."""

    slug, title = "identity-conflict", "Identity Conflict"


class LastSignInMethod(Conflict):
    """Unlinking this identity would leave the account without a way to sign in."""

    slug, title = "last-sign-in-method", "Last Sign-In Method"
