"""One signed webhook POST, to the address that was checked, with hard limits.

The connection goes to the address :func:`collab.adapters.webhooks.addresses.check` resolved and
approved a moment before (TLS still verifies the host name), so DNS cannot swap in a private
address between the check and the connect. Redirects are not followed (a 3xx is a failure: a
redirect could point anywhere). Each socket operation times out (``timeout``, default 10 s; a
receiver that hangs is a failure, retried later), and at most 4 KB of the answer is read.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any

from collab.adapters.webhooks import addresses, signing
from collab.errors import ValidationError

READ_LIMIT = 4096
USER_AGENT = "collab-webhooks/1"


@dataclass(frozen=True, slots=True)
class Attempt:
    ok: bool
    status: int | None
    error: str | None
    duration_ms: int
    refused: bool = False  # the address check said no: nothing was sent


def _connection(target: addresses.Target, timeout: float) -> http.client.HTTPConnection:
    def create(addr: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        return socket.create_connection((target.address, addr[1]), *args, **kwargs)

    conn: http.client.HTTPConnection
    if target.scheme == "https":
        conn = http.client.HTTPSConnection(
            target.host, target.port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        conn = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
    conn._create_connection = create  # type: ignore[attr-defined]  # pin the checked address
    return conn


def deliver(
    url: str,
    secret: str,
    msg_id: str,
    body: bytes,
    *,
    allow_loopback: bool = False,
    timeout: float = 10.0,
    resolve: addresses.Resolver | None = None,
) -> Attempt:
    """POST ``body`` signed as ``msg_id``; 2xx is success, anything else (or no answer) a failure."""
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        target = addresses.check(url, allow_loopback=allow_loopback, resolve=resolve)
    except ValidationError as exc:
        return Attempt(False, None, exc.message, took(), refused=True)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        **signing.headers(secret, msg_id, int(time.time()), body),
    }
    conn = _connection(target, timeout)
    try:
        conn.request("POST", target.path, body=body, headers=headers)
        response = conn.getresponse()
        response.read(READ_LIMIT)
        status = response.status
    except (OSError, http.client.HTTPException) as exc:
        return Attempt(False, None, f"{type(exc).__name__}: {exc}"[:300], took())
    finally:
        conn.close()
    if 200 <= status < 300:
        return Attempt(True, status, None, took())
    return Attempt(False, status, f"HTTP {status}", took())
