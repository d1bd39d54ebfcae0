"""Talking to identity providers: discovery (cached), JWKS (cached, refetched on an unknown
``kid`` at most every 30 s), the code exchange, userinfo, and ``id_token`` validation.

``id_token`` validation (OpenID Connect Core §3.1.3.7): the algorithm comes from an
asymmetric allow-list (never ``none``, never an HMAC keyed with something public); the key
comes from the provider's JWKS by ``kid``, never from the token's own headers; ``iss`` must
be the configured issuer, ``aud`` must contain our client id (``azp`` must be it when there
are several audiences), ``exp``/``iat`` are required, ``nonce`` must be the one this sign-in
sent, and ``at_hash`` must match the access token when present. Every call to a provider
has ``auth.provider_timeout``; a provider that is down, slow or answers nonsense is a
``ProviderUnavailable`` (502), never a 500.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from garrison.auth.errors import ProviderUnavailable, SignInFailed
from garrison.log import get_logger
from garrison.settings import AuthSettings

log = get_logger("garrison.auth.oauth")
ID_TOKEN_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"]
ID_TOKEN_ALGORITHMS += ["ES512", "EdDSA", "Ed25519"]
_HASHES = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}
_JWKS_MISS_SECONDS = 30.0
_MAX_BODY = 1_000_000


def _hash_for(alg: str) -> Any:
    if alg in ("EdDSA", "Ed25519"):
        return hashlib.sha512  # OpenID Connect: Ed25519 signs with SHA-512 inside
    return _HASHES[alg[-3:]]


def at_hash(access_token: str, alg: str) -> str:
    digest = _hash_for(alg)(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


@dataclass
class _Cached:
    value: Any
    at: float


class ProviderClient:
    """One per process (in ``AuthRuntime``): the outbound HTTP client and the caches."""

    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        self.http = httpx.AsyncClient(
            timeout=settings.provider_timeout,
            follow_redirects=False,
            headers={"Accept": "application/json", "User-Agent": "Garrison"},
        )
        self._discovery: dict[str, _Cached] = {}
        self._jwks: dict[str, _Cached] = {}

    async def close(self) -> None:
        await self.http.aclose()

    async def _json(self, method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
        try:
            response = await self.http.request(method, url, **kwargs)
        except httpx.TimeoutException:
            raise ProviderUnavailable("the identity provider did not answer in time") from None
        except httpx.HTTPError as exc:
            log.warning("auth.provider.unreachable", url=url, error=type(exc).__name__)
            raise ProviderUnavailable("the identity provider cannot be reached") from None
        if len(response.content) > _MAX_BODY:
            raise ProviderUnavailable("the identity provider's answer is too large")
        try:
            return response.status_code, response.json()
        except ValueError:
            if response.status_code >= 500:
                raise ProviderUnavailable("the identity provider failed") from None
            return response.status_code, None

    def _fresh(self, cache: dict[str, _Cached], key: str) -> Any | None:
        entry = cache.get(key)
        if entry is not None and time.monotonic() - entry.at < self.settings.provider_metadata_ttl:
            return entry.value
        return None

    async def discover(self, issuer: str) -> dict[str, Any]:
        cached = self._fresh(self._discovery, issuer)
        if cached is not None:
            return dict(cached)
        status, doc = await self._json("GET", f"{issuer}/.well-known/openid-configuration")
        if status != 200 or not isinstance(doc, dict):
            raise ProviderUnavailable("the identity provider's discovery document is unavailable")
        # OpenID Connect Discovery §4.3: the document must name exactly this issuer.
        if doc.get("issuer") != issuer:
            raise ProviderUnavailable("the discovery document names another issuer")
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(doc.get(key), str):
                raise ProviderUnavailable(f"the discovery document lacks {key}")
        self._discovery[issuer] = _Cached(doc, time.monotonic())
        return dict(doc)

    async def keys(self, jwks_uri: str, *, refresh: bool = False) -> dict[str, jwt.PyJWK]:
        entry = self._jwks.get(jwks_uri)
        age = time.monotonic() - entry.at if entry is not None else float("inf")
        if entry is not None and not refresh and age < self.settings.provider_metadata_ttl:
            return dict(entry.value)
        if entry is not None and refresh and age < _JWKS_MISS_SECONDS:
            return dict(entry.value)  # an unknown kid cannot make us refetch on every request
        status, doc = await self._json("GET", jwks_uri)
        if status != 200 or not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
            raise ProviderUnavailable("the identity provider's JWKS is unavailable")
        keys: dict[str, jwt.PyJWK] = {}
        for item in doc["keys"]:
            if not isinstance(item, dict) or item.get("use", "sig") != "sig":
                continue
            try:
                key = jwt.PyJWK(item)
            except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
                continue
            keys[str(item.get("kid", ""))] = key
        self._jwks[jwks_uri] = _Cached(keys, time.monotonic())
        return dict(keys)

    async def exchange(
        self,
        token_endpoint: str,
        *,
        client_id: str,
        client_secret: str | None,
        code: str,
        redirect_uri: str,
        code_verifier: str,
    ) -> dict[str, Any]:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        }
        auth: tuple[str, str] | None = None
        if client_secret is not None:
            auth = (client_id, client_secret)
        else:
            form["client_id"] = client_id
        status, body = await self._json("POST", token_endpoint, data=form, auth=auth)
        if status >= 500:
            raise ProviderUnavailable("the identity provider failed to exchange the code")
        if status != 200 or not isinstance(body, dict) or "error" in body:
            error = body.get("error") if isinstance(body, dict) else None
            reason = error if isinstance(error, str) and error.isascii() else "refused"
            raise SignInFailed(f"the identity provider refused the code ({reason[:40]})")
        if not isinstance(body.get("access_token"), str):
            raise ProviderUnavailable("the identity provider sent no access token")
        return body

    async def userinfo(self, url: str, access_token: str) -> Any:
        status, body = await self._json(
            "GET", url, headers={"Authorization": f"Bearer {access_token}"}
        )
        if status != 200 or body is None:
            raise ProviderUnavailable("the identity provider's userinfo is unavailable")
        return body

    async def validate_id_token(
        self,
        id_token: str,
        *,
        issuer: str,
        jwks_uri: str,
        client_id: str,
        nonce: str,
        access_token: str | None,
    ) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError:
            raise SignInFailed("the id_token is malformed") from None
        alg = header.get("alg")
        if alg not in ID_TOKEN_ALGORITHMS:
            raise SignInFailed("the id_token's algorithm is not accepted")
        kid = str(header.get("kid", ""))
        keys = await self.keys(jwks_uri)
        if kid not in keys:
            keys = await self.keys(jwks_uri, refresh=True)
        key = keys.get(kid)
        if key is None:
            raise SignInFailed("the id_token is signed by a key not in the provider's JWKS")
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key,
                algorithms=[alg],
                audience=client_id,
                issuer=issuer,
                leeway=self.settings.leeway,
                options={"require": ["iss", "aud", "exp", "iat", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise SignInFailed("the id_token has expired") from None
        except jwt.PyJWTError as exc:
            raise SignInFailed(f"the id_token is invalid ({type(exc).__name__})") from None
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != client_id:
            raise SignInFailed("the id_token was issued to another party (azp)")
        sent = claims.get("nonce")
        if not isinstance(sent, str) or not hmac.compare_digest(sent, nonce):
            raise SignInFailed("the id_token's nonce does not belong to this sign-in")
        if (
            "at_hash" in claims
            and access_token is not None
            and not hmac.compare_digest(str(claims["at_hash"]), at_hash(access_token, alg))
        ):
            raise SignInFailed("the id_token's at_hash does not match the access token")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise SignInFailed("the id_token has no subject")
        return claims
