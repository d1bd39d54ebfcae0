"""One HTTP attempt: resolve and check the address, connect to it, sign, read a bounded
answer. Never raises for anything the receiver or the network does: every outcome is an
``Outcome`` the delivery loop records."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import h11

from garrison import __version__
from garrison.webhooks import signing, ssrf
from garrison.webhooks.config import WebhookSettings
from garrison.webhooks.http import Pool, ProtocolError

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
        self._pools: dict[str, Pool] = {}  # one keep-alive pool per endpoint

    def _pool(self, key: str) -> Pool:
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = Pool(
                self.config.endpoint_concurrency, connect_timeout=self.config.connect_timeout
            )
        return pool

    async def close(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.close()

    async def send(
        self,
        *,
        url: str,
        msg_id: str,
        body: str,
        secrets: list[str],
        headers: dict[str, Any],
        pool: str = "",
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
        default_port = 443 if target.scheme == "https" else 80
        authority = target.host if ":" not in target.host else f"[{target.host}]"
        if target.port != default_port:
            authority += f":{target.port}"
        request_headers = [
            *((str(k), str(v)) for k, v in headers.items()),
            ("Host", authority),
            ("Content-Type", "application/json"),
            ("User-Agent", USER_AGENT),
            ("webhook-id", msg_id),
            ("webhook-timestamp", str(timestamp)),
            ("webhook-signature", signing.header(secrets, msg_id, timestamp, payload)),
        ]
        limit = self.config.max_response_bytes
        try:
            async with asyncio.timeout(self.config.timeout):
                answer = await self._pool(pool).post(
                    (target.scheme, str(address), target.port, target.host),
                    target=target.path,
                    headers=request_headers,
                    body=payload,
                    limit=limit,
                )
        except TimeoutError:
            timeout = self.config.timeout
            return Outcome(False, None, elapsed(), None, f"timed out after {timeout:g} s")
        except (OSError, ProtocolError, h11.ProtocolError, asyncio.IncompleteReadError) as exc:
            return Outcome(False, None, elapsed(), None, f"{type(exc).__name__}: {exc}"[:900])
        status = answer.status
        text = answer.body[: self.config.stored_response_bytes].decode("utf-8", "replace")
        if answer.over_limit:
            return Outcome(
                False, status, elapsed(), text, f"response body over {limit} bytes; cut off"
            )
        ok = 200 <= status < 300
        error = None if ok else f"HTTP {status}"
        if 300 <= status < 400:
            error = f"HTTP {status}: redirects are not followed"
        wait = retry_after(answer.headers.get("retry-after"), time.time())
        return Outcome(
            ok,
            status,
            elapsed(),
            text,
            error,
            retry_after=wait if status in (429, 503) else None,
            gone=status == 410,
        )
