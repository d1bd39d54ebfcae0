"""No request to the auth endpoints, however malformed, gets a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.authkit import AuthApp, auth_app
from tests.conftest import make_settings

ENDPOINTS = [
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/register"),
    ("POST", "/api/v1/auth/token"),
    ("POST", "/api/v1/auth/logout"),
    ("GET", "/api/v1/auth/me"),
    ("POST", "/api/v1/auth/password-reset"),
    ("POST", "/api/v1/auth/verify-email"),
    ("POST", "/api/v1/api-keys"),
    ("GET", "/api/v1/admin/users"),
]
latin1 = st.text(alphabet=st.characters(codec="latin-1", exclude_categories=["Cc"]), max_size=120)


@pytest.fixture
async def kit(tmp_path: Path) -> AsyncIterator[AuthApp]:
    # Failures would lock the fuzzer out after a few tries; this test is about 500s.
    settings = make_settings(
        tmp_path, auth={"lockout_threshold": 10_000, "lockout_ip_threshold": 10_000}
    )
    async with auth_app(settings) as app:
        yield app


@hsettings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    endpoint=st.sampled_from(ENDPOINTS),
    body=st.one_of(
        st.binary(max_size=200),
        st.dictionaries(
            st.sampled_from(
                [
                    "email",
                    "password",
                    "grant_type",
                    "refresh_token",
                    "token",
                    "new_password",
                    "client_id",
                    "client_secret",
                    "scope",
                    "name",
                    "scopes",
                    "username",
                ]
            ),
            st.one_of(latin1, st.integers(), st.none(), st.lists(latin1, max_size=3)),
            max_size=5,
        ).map(lambda d: httpx.QueryParams({k: str(v) for k, v in d.items()}).__str__().encode()),
    ),
    content_type=st.sampled_from(
        ["application/json", "application/x-www-form-urlencoded", "multipart/form-data", ""]
    ),
    authorization=latin1,
    api_key=latin1,
)
async def test_auth_endpoints_never_fail_with_500(
    kit: AuthApp,
    endpoint: tuple[str, str],
    body: bytes,
    content_type: str,
    authorization: str,
    api_key: str,
) -> None:
    method, url = endpoint
    headers = {"Content-Type": content_type, "Authorization": authorization, "X-API-Key": api_key}
    try:
        request = kit.client.build_request(method, url, content=body, headers=headers)
    except (UnicodeEncodeError, ValueError):
        return
    response = await kit.client.send(request)
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"
