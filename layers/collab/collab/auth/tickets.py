"""WebSocket ticket verification (contract 3.1) with the standard library only.

Why not PyJWT here: ``$connect`` is latency-critical at cold start, and importing PyJWT pulls in
``cryptography`` (~100 ms measured, bench/coldstart.py) for algorithms a ticket never uses. A ticket
is HS256 only, so verification is one HMAC: the header must say exactly ``HS256`` (no ``none``, no
RS/HS confusion is possible), the signature is compared in constant time before any claim is
trusted, and the claims are checked as PyJWT would with ``leeway=30``. Tickets are issued with PyJWT
(``collab.auth.tokens.issue_ticket``); tests check this verifier agrees with PyJWT on generated tokens.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from collab.errors import Unauthorized

LEEWAY_S = 30  # clock skew between hosts; small against a 5-minute ticket
TICKET_AUDIENCE = "collab-ws"
TICKET_TTL_S = 300  # 5 minutes: a ticket travels in a URL, so it is short-lived and single-use
MAX_TOKEN_CHARS = 4096
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
_REQUIRED = ("exp", "iat", "sub", "wid", "jti", "aud", "iss")


@dataclass(frozen=True, slots=True)
class Ticket:
    user_id: str
    workspace_id: str
    jti: str
    expires_at: int


def _b64(part: str) -> bytes:
    """Strict base64url: only the canonical encoding of its bytes (unused low bits zero), as PyJWT
    requires of a signature, so that one token has exactly one spelling."""
    if not _B64URL.match(part):
        raise ValueError("not base64url")
    raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != part:
        raise ValueError("not canonical base64url")
    return raw


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def verify_ticket(token: str | None, key: str, issuer: str, *, now: float | None = None) -> Ticket:
    """Signature and claims of a ticket; consuming its ``jti`` is the caller's next step."""
    if not token:
        raise Unauthorized("missing ticket")
    invalid = Unauthorized("invalid ticket")
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
        raise invalid
    h64, p64, s64 = token.split(".")
    try:
        header = json.loads(_b64(h64))
        signature = _b64(s64)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise invalid from None
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        raise invalid
    expected = hmac.new(key.encode(), f"{h64}.{p64}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(signature, expected):
        raise invalid
    try:
        claims = json.loads(_b64(p64))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise invalid from None
    if not isinstance(claims, dict):
        raise invalid
    for name in _REQUIRED:
        if name not in claims:
            raise Unauthorized(f"ticket lacks the {name} claim")
    t = time.time() if now is None else now
    exp, iat, nbf = claims["exp"], claims["iat"], claims.get("nbf")
    if not _number(exp) or not _number(iat) or (nbf is not None and not _number(nbf)):
        raise invalid
    if exp <= t - LEEWAY_S:
        raise Unauthorized("ticket expired")
    if iat > t + LEEWAY_S or (nbf is not None and nbf > t + LEEWAY_S):
        raise Unauthorized("ticket is not yet valid")
    aud = claims["aud"]
    if not (aud == TICKET_AUDIENCE or (isinstance(aud, list) and TICKET_AUDIENCE in aud)):
        raise invalid
    if claims["iss"] != issuer:
        raise invalid
    sub, wid, jti = claims["sub"], claims["wid"], claims["jti"]
    if not (isinstance(sub, str) and 1 <= len(sub) <= 128 and isinstance(wid, str) and isinstance(jti, str)):
        raise invalid
    if not 8 <= len(jti) <= 64:
        raise invalid
    if exp - iat > TICKET_TTL_S:
        raise Unauthorized("ticket lifetime is too long")
    try:
        wid = str(uuid.UUID(wid))
    except ValueError:
        raise invalid from None
    return Ticket(sub, wid, jti, int(exp))
