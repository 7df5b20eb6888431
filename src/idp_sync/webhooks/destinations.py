"""Where deliveries may go: absolute http(s) URLs whose host resolves only to public addresses.

A webhook URL is chosen by an API client but fetched by our workers, inside our network:
without this check it would reach the database, the broker or a cloud metadata service
(SSRF). Every address the host resolves to is checked, at registration and again before
each attempt (DNS can change), and the attempt connects to the address that was checked,
so that a second lookup cannot point elsewhere (DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

from idp_sync.errors import Unprocessable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]


class DestinationRefused(Exception):
    """The URL is not a place deliveries may go; the message says why (never the URL)."""


def _field_error(message: str) -> Unprocessable:
    return Unprocessable(
        message, errors=[{"code": "invalid_endpoint_url", "field": "endpoint_url"}]
    )


def parse(url: str) -> SplitResult:
    """Check the URL's form: absolute, http or https, a host, no credentials."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise _field_error("endpoint_url is not a valid URL") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _field_error("endpoint_url must be an absolute http or https URL")
    if parts.username is not None or parts.password is not None:
        raise _field_error("endpoint_url must not contain credentials")
    if port == 0:
        raise _field_error("endpoint_url has an invalid port")
    return parts


def default_port(parts: SplitResult) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def is_public(address: IPAddress) -> bool:
    """False for loopback, private, link-local, shared, reserved, multicast and the like."""
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    return address.is_global and not address.is_multicast


def public_addresses(host: str, port: int, resolver: Resolver = system_resolver) -> list[str]:
    """The host's addresses, all of them public, or ``DestinationRefused``."""
    try:
        literal = ipaddress.ip_address(host)
        found = [str(literal)]
    except ValueError:
        try:
            found = resolver(host, port)
        except (OSError, UnicodeError) as exc:
            raise DestinationRefused("the host name cannot be resolved") from exc
    if not found:
        raise DestinationRefused("the host name cannot be resolved")
    for text in found:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if not is_public(address):
            raise DestinationRefused("the host resolves to a private or loopback address")
    return found


def check_registration(
    url: str, *, allow_private: bool, resolver: Resolver = system_resolver
) -> str:
    """Validate an endpoint URL given to the API; 422 if deliveries could not go there."""
    parts = parse(url)
    if not allow_private:
        try:
            public_addresses(parts.hostname or "", default_port(parts), resolver)
        except DestinationRefused as exc:
            raise _field_error(f"endpoint_url is refused: {exc}") from None
    return urlunsplit(parts)


@dataclass(frozen=True)
class Target:
    """What an attempt connects to: the URL to request, and headers/extensions to add."""

    url: str
    headers: dict[str, str]
    extensions: dict[str, Any]


def pin(url: str, *, allow_private: bool, resolver: Resolver = system_resolver) -> Target:
    """Resolve and check ``url`` now; the target connects to the checked address."""
    try:
        parts = parse(url)
    except Unprocessable as exc:
        raise DestinationRefused(exc.message) from None
    host = parts.hostname or ""
    address = public_addresses(host, default_port(parts), resolver)[0] if not allow_private else ""
    if allow_private or address == host:  # nothing to check, or already an address
        return Target(url, {}, {})
    literal = f"[{address}]" if ":" in address else address
    netloc = f"{literal}:{parts.port}" if parts.port else literal
    host_header = f"{host}:{parts.port}" if parts.port else host
    extensions: dict[str, Any] = {"sni_hostname": host} if parts.scheme == "https" else {}
    return Target(urlunsplit(parts._replace(netloc=netloc)), {"Host": host_header}, extensions)
