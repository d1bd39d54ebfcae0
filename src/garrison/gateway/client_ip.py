"""The client's address, honouring ``X-Forwarded-For`` only from configured trusted proxies.

The chain is read from the right: each hop added by a trusted proxy is skipped, and the first
address a trusted proxy did not vouch for is the client. ``X-Forwarded-Proto`` from a trusted
proxy sets the scheme. ``scope["client"]`` is rewritten so every later layer sees the client.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from garrison.context import RequestContext, header, request_id, reset_context, set_context, state
from garrison.types import ASGIApp, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(value.strip(), strict=False) for value in values)


def _parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # [v6]:port
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # v4:port
        value = value.split(":", 1)[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def is_loopback(value: str | None) -> bool:
    address = _parse_ip(value) if value else None
    return bool(address and address.is_loopback)


class ClientAddress:
    """Resolves a request's client address through the trusted proxies."""

    def __init__(self, trusted_proxies: Iterable[str] = ()) -> None:
        self.trusted = parse_networks(trusted_proxies)

    def _trusted(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
        return address is not None and any(address in net for net in self.trusted)

    def resolve(self, scope: Scope) -> object:
        """Rewrite ``scope`` for the client, leave the addresses in the request state and set
        the request context; returns the token for ``reset_context``."""
        peer = scope.get("client")
        peer_host = peer[0] if peer else None
        client = peer_host
        if self.trusted and peer_host and self._trusted(_parse_ip(peer_host)):
            forwarded = header(scope, b"x-forwarded-for")
            if forwarded:
                hops = [hop.strip() for hop in forwarded.decode("latin-1").split(",")]
                for hop in reversed(hops):
                    address = _parse_ip(hop)
                    if address is None:
                        break  # garbage in the chain: stop at the last trusted hop
                    client = str(address)
                    if not self._trusted(address):
                        break
            proto = header(scope, b"x-forwarded-proto")
            if proto in (b"http", b"https"):
                scope["scheme"] = proto.decode()
        state(scope)["client_ip"] = client
        state(scope)["peer_ip"] = peer_host
        if client is not None:
            scope["client"] = (client, peer[1] if peer else 0)
        agent = header(scope, b"user-agent")
        return set_context(
            RequestContext(
                request_id=request_id(scope),
                ip=client,
                user_agent=agent.decode("latin-1")[:512] if agent else None,
            )
        )


class ClientIpMiddleware:
    def __init__(self, app: ASGIApp, *, trusted_proxies: Iterable[str] = ()) -> None:
        self.app = app
        self.address = ClientAddress(trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = self.address.resolve(scope)
        try:
            await self.app(scope, receive, send)
        finally:
            reset_context(token)
