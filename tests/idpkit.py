"""The external identity provider of the OAuth tests: panva's ``oidc-provider`` (npm) on
Node, started on a loopback port from ``tests/idp`` (installed with ``npm ci`` from the
committed lock file when ``node_modules`` is missing). Without node/npm the tests that need
it skip with the reason; under CI they fail."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx

from tests import services
from tests.oauthkit import form_of

IDP_DIR = Path(__file__).parent / "idp"
CLIENT_SECRET = "idp-client-secret-0123456789abcdef"


@dataclass(frozen=True)
class Idp:
    issuer: str
    clients: list[dict[str, Any]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _install() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        services.unavailable("node/npm (for the oidc-provider test IdP)", "not on PATH")
    assert node is not None
    assert npm is not None
    if not (IDP_DIR / "node_modules" / "oidc-provider").is_dir():
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=IDP_DIR,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            services.unavailable("oidc-provider (npm ci)", done.stderr.strip()[-300:])
    return node


@contextmanager
def running_idp(callbacks: list[str]) -> Iterator[Idp]:
    """The provider with one confidential client (``garrison``) allowed ``callbacks``."""
    node = _install()
    port = free_port()
    clients = [
        {
            "client_id": "garrison",
            "client_secret": CLIENT_SECRET,
            "redirect_uris": callbacks,
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_basic",
        }
    ]
    process = subprocess.Popen(
        [node, "provider.mjs", str(port), json.dumps(clients)],
        cwd=IDP_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:  # blocks until the provider says it listens (or exits)
            if line.startswith("listening "):
                break
        else:
            services.unavailable("oidc-provider", f"exited with {process.wait()}")
        yield Idp(issuer=f"http://127.0.0.1:{port}", clients=clients)
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


async def walk(idp: httpx.AsyncClient, url: str, *, login: str, until: str) -> str:
    """A browser at the provider: follow redirects, sign in as ``login`` on the development
    login page, press Continue on the consent page; returns the first URL under ``until``
    (the redirect back to Garrison)."""
    back, form = await walk_to(idp, url, login=login, until=until)
    assert form is None, "the provider answered with a form post"
    return back


async def walk_to(
    idp: httpx.AsyncClient, url: str, *, login: str, until: str
) -> tuple[str, dict[str, str] | None]:
    """As ``walk``; a ``response_mode=form_post`` answer (a page whose form posts to
    ``until``) comes back as its action and fields."""
    for _ in range(20):
        if url.startswith(until):
            return url, None
        response = await idp.get(url)
        if response.is_redirect:
            url = urljoin(url, response.headers["location"])
            continue
        assert response.status_code == 200, (url, response.status_code, response.text[:300])
        action, values = form_of(response.text)
        if action.startswith(until):
            return action, values
        if "login" in values:
            values.update(login=login, password="any password")
        answer = await idp.post(urljoin(url, action), data=values)
        assert answer.is_redirect, (answer.status_code, answer.text[:300])
        url = urljoin(url, answer.headers["location"])
    raise AssertionError("the provider never redirected back")
