"""Where a webhook may be sent: the SSRF rules, applied at registration and again at delivery.

A webhook URL is chosen by a workspace admin, and the sender runs inside our VPC: without rules it
could be pointed at the instance metadata service (169.254.169.254, fd00:ec2::254), RDS Proxy,
Redis or anything else on a private network. So:

- ``https`` only; no user info in the URL; at most 2,048 characters.
- Every address the host name resolves to must be a public (globally routable) unicast address:
  no loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7), link-local (169.254/16, fe80::/10,
  which holds the metadata service), carrier-grade NAT (100.64/10), multicast, reserved or
  unspecified addresses, and no IPv4-mapped IPv6 form of any of them.
- The check runs again at every delivery, and the connection goes to the address that was
  checked (DNS rebinding: a name that resolved to a public address at registration may resolve
  to 169.254.169.254 a minute later).

Under ``collab dev`` (``WEBHOOK_ALLOW_LOOPBACK=1``) ``http`` and loopback addresses are allowed too,
so a receiver on 127.0.0.1 works; every other rule stays.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from collab.errors import ValidationError

MAX_URL = 2048
Resolver = Callable[[str, int], list[str]]


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # with the query string
    address: str  # the checked address the connection goes to


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def allowed(address: str, *, allow_loopback: bool = False) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return allow_loopback
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified or ip.is_link_local)


def parse(url: str, *, allow_loopback: bool = False) -> tuple[str, str, int, str]:
    """Scheme, host, port and path of an acceptable URL; :class:`ValidationError` otherwise."""
    if len(url) > MAX_URL:
        raise ValidationError(f"url: longer than {MAX_URL} characters", field="url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValidationError("url: not a valid URL", field="url") from None
    schemes = ("https", "http") if allow_loopback else ("https",)
    if parts.scheme not in schemes:
        raise ValidationError("url: must be an https URL", field="url")
    if not parts.hostname or parts.username is not None or parts.password is not None:
        raise ValidationError("url: needs a host and no user info", field="url")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise ValidationError("url: contains whitespace or control characters", field="url")
    port = port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port, path


def check(url: str, *, allow_loopback: bool = False, resolve: Resolver | None = None) -> Target:
    """Parse, resolve and check a URL: the :class:`Target` to connect to, or ValidationError saying why."""
    scheme, host, port, path = parse(url, allow_loopback=allow_loopback)
    try:
        found = (resolve or _resolve)(host, port)
    except (OSError, UnicodeError):
        raise ValidationError(f"url: the host {host!r} does not resolve", field="url") from None
    if not found:
        raise ValidationError(f"url: the host {host!r} does not resolve", field="url")
    refused = [a for a in found if not allowed(a, allow_loopback=allow_loopback)]
    if refused:
        raise ValidationError(f"url: {host!r} resolves to a non-public address ({refused[0]})", field="url")
    return Target(scheme, host, port, path, found[0])
