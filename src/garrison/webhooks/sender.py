"""One HTTP attempt: resolve and check the address, connect to it, sign, read a bounded
answer. Never raises for anything the receiver or the network does: every outcome is an
``Outcome`` the delivery loop records."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from garrison import __version__
from garrison.webhooks import signing, ssrf
from garrison.webhooks.config import WebhookSettings

USER_AGENT = f"Garrison-Webhooks/{__version__}"


@dataclass(frozen=True)
class Outcome:
    succeeded: bool
    status_code: int | None
    latency_ms: float
    body: str | None
    error: str | None
    retry_after: float | None = None
    gone: bool = False


def retry_after(value: str | None, now: float) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


class Sender:
    def __init__(self, config: WebhookSettings, *, development: bool) -> None:
        self.config = config
        self.allow_private = config.private_allowed(development)
        self.allow_http = config.http_allowed(development)
        self.client = httpx.AsyncClient(
            follow_redirects=False,
            timeout=httpx.Timeout(config.timeout, connect=config.connect_timeout),
            limits=httpx.Limits(
                max_connections=config.global_concurrency,
                max_keepalive_connections=config.global_concurrency,
            ),
            trust_env=False,
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def send(
        self,
        *,
        url: str,
        msg_id: str,
        body: str,
        secrets: list[str],
        headers: dict[str, Any],
    ) -> Outcome:
        started = time.monotonic()

        def elapsed() -> float:
            return (time.monotonic() - started) * 1000

        try:
            target = ssrf.check_url(
                url, allow_http=self.allow_http, allow_private=self.allow_private
            )
            address = await ssrf.resolve(target, allow_private=self.allow_private)
        except ssrf.Refused as exc:
            return Outcome(False, None, elapsed(), None, f"refused: {exc}")
        payload = body.encode()
        timestamp = int(time.time())
        host = f"[{address}]" if address.version == 6 else str(address)
        default_port = 443 if target.scheme == "https" else 80
        authority = target.host if ":" not in target.host else f"[{target.host}]"
        if target.port != default_port:
            authority += f":{target.port}"
        request_headers = {
            **{str(k): str(v) for k, v in headers.items()},
            "Host": authority,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Accept-Encoding": "identity",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signing.header(secrets, msg_id, timestamp, payload),
        }
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        limit = self.config.max_response_bytes
        try:
            async with asyncio.timeout(self.config.timeout):
                async with self.client.stream(
                    "POST",
                    f"{target.scheme}://{host}:{target.port}{target.path}",
                    content=payload,
                    headers=request_headers,
                    extensions=extensions,
                ) as response:
                    buffer = bytearray()
                    over = False
                    async for chunk in response.aiter_raw():
                        buffer += chunk
                        if len(buffer) > limit:
                            over = True
                            break
                    status = response.status_code
                    wait = retry_after(response.headers.get("retry-after"), time.time())
        except TimeoutError:
            return Outcome(
                False, None, elapsed(), None, f"timed out after {self.config.timeout:g} s"
            )
        except httpx.HTTPError as exc:
            return Outcome(False, None, elapsed(), None, f"{type(exc).__name__}: {exc}"[:900])
        except OSError as exc:
            return Outcome(False, None, elapsed(), None, f"{type(exc).__name__}: {exc}"[:900])
        text = bytes(buffer[: self.config.stored_response_bytes]).decode("utf-8", "replace")
        if over:
            return Outcome(
                False, status, elapsed(), text, f"response body over {limit} bytes; cut off"
            )
        ok = 200 <= status < 300
        error = None if ok else f"HTTP {status}"
        if 300 <= status < 400:
            error = f"HTTP {status}: redirects are not followed"
        return Outcome(
            ok,
            status,
            elapsed(),
            text,
            error,
            retry_after=wait if status in (429, 503) else None,
            gone=status == 410,
        )
