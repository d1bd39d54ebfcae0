"""Runs the ASGI app on granian (Rust HTTP server) with uvloop.

On SIGTERM or SIGINT granian stops accepting connections, lets in-flight requests finish
(up to ``shutdown_timeout`` seconds per worker), then exits.
"""

from __future__ import annotations

import sys
from typing import Any

APP_FACTORY = "garrison.app:create_app_from_env"


# The request line and headers together: a request whose head is larger is refused by the
# HTTP server itself (431, or 400 for a malformed one) before the app sees it, so that
# answer has no problem body and no security headers (README, "Limits"). 64 KiB holds the
# longest URL the API accepts (a 4,096-character filter, percent-encoded) and any token.
MAX_REQUEST_HEAD_BYTES = 65_536


def _log_config() -> dict[str, Any]:
    # granian's own lines go to the root logger, which garrison.log renders as JSON/console.
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {
            "_granian": {"handlers": [], "propagate": True},
            "granian.access": {"handlers": [], "propagate": False},
        },
    }


def run_server(
    *,
    host: str,
    port: int,
    workers: int,
    shutdown_timeout: int,
    target: str = APP_FACTORY,
    factory: bool = True,
    backlog: int = 16_384,
    connections_per_worker: int = 10_000,
    keep_alive_timeout: int = 60,
) -> None:
    """``backlog`` is the listen queue (the kernel caps it at ``net.core.somaxconn``);
    ``connections_per_worker`` is granian's backpressure: how many connections a worker
    keeps open at once (granian's own default, ``backlog / workers``, would hold a
    two-worker server to about 1,000 keep-alive clients). ``keep_alive_timeout`` (seconds)
    closes a connection that sends no complete request headers for that long: idle
    keep-alive clients and slow senders alike (granian's default is 30)."""
    from granian import Granian
    from granian.constants import Interfaces, Loops
    from granian.http import HTTP1Settings

    loop = Loops.uvloop if sys.platform != "win32" else Loops.asyncio
    Granian(
        target,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        loop=loop,
        factory=factory,
        log_enabled=True,
        log_access=False,
        log_dictconfig=_log_config(),
        respawn_failed_workers=True,
        workers_kill_timeout=shutdown_timeout,
        backlog=backlog,
        backpressure=connections_per_worker,
        http1_settings=HTTP1Settings(
            header_read_timeout=keep_alive_timeout * 1000, max_buffer_size=MAX_REQUEST_HEAD_BYTES
        ),
    ).serve()
