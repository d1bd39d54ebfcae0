"""Where a webhook may be sent: URL checks at creation, address checks at send time.

The host is resolved when the delivery is made and the connection goes to the address that
was checked (the URL's host stays in ``Host`` and in TLS SNI), so a DNS answer that changes
between the check and the connect cannot point a delivery at an internal service.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud metadata services that are not already private or link-local.
_METADATA = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("fd00:ec2::254"),
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
}
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
MAX_URL_LENGTH = 2048


class Refused(ValueError):
    """The URL or the address it resolves to may not receive webhooks; ``str`` says why."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as written in the URL (no brackets)
    port: int
    path: str  # path and query


def parse(url: str, *, allow_http: bool) -> Target:
    if len(url) > MAX_URL_LENGTH:
        raise Refused(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise Refused("the URL must start with https://")
    if parts.scheme == "http" and not allow_http:
        raise Refused("only https:// endpoints are allowed here")
    if parts.username or parts.password:
        raise Refused("the URL must not carry credentials; use custom headers")
    host = parts.hostname
    if not host:
        raise Refused("the URL has no host")
    if parts.fragment:
        raise Refused("the URL must not have a fragment")
    if any(ch.isspace() for ch in url):
        raise Refused("the URL must not contain whitespace")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme, host, port or (443 if parts.scheme == "https" else 80), path)


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` is not a public unicast address, or None when it is."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            reason = refusal(mapped)
            return f"IPv4-mapped {reason}" if reason else None
        if address.teredo is not None:
            return "a Teredo address"
    if address in _METADATA:
        return "a cloud metadata address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_unspecified:
        return "the unspecified address"
    if isinstance(address, ipaddress.IPv6Address) and address in ipaddress.ip_network("fc00::/7"):
        return "a unique-local address"
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "a shared (carrier-grade NAT) address"
    if address.is_private or address.is_reserved or not address.is_global:
        return "a private or reserved address"
    return None


def literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def check_url(url: str, *, allow_http: bool, allow_private: bool) -> Target:
    """Checks that need no DNS: scheme, shape, and a literal address in the URL."""
    target = parse(url, allow_http=allow_http)
    address = literal(target.host)
    lowered = target.host.lower().rstrip(".")
    if not allow_private:
        if address is not None and (reason := refusal(address)):
            raise Refused(f"{target.host} is {reason}")
        if lowered == "localhost" or lowered.endswith((".localhost", ".internal", ".local")):
            raise Refused(f"{target.host} names this machine or an internal network")
    return target


async def resolve(target: Target, *, allow_private: bool) -> IPAddress:
    """The address to connect to, after checking every address the host resolves to."""
    address = literal(target.host)
    if address is not None:
        candidates = [address]
    else:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(
                target.host, target.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
        except (socket.gaierror, UnicodeError) as exc:
            raise Refused(f"cannot resolve {target.host}: {exc}") from None
        candidates = []
        for info in infos:
            candidate = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
            if candidate not in candidates:
                candidates.append(candidate)
        if not candidates:
            raise Refused(f"{target.host} has no address")
    if not allow_private:
        for candidate in candidates:
            if reason := refusal(candidate):
                raise Refused(f"{target.host} resolves to {candidate}, {reason}")
    return candidates[0]
