"""Access tokens and WebSocket tickets (contract 2, 3.1).

Access tokens: HS256 with ``JWT_SECRET``, or RS256/ES256 against ``JWT_JWKS_URL`` (e.g. Cognito).
The algorithm list is pinned per mode, so ``alg: none`` and HS/RS confusion are refused by
construction. ``exp``, ``iat`` and ``sub`` are required; ``iss`` and ``aud`` are checked; the clock
leeway is 30 s (enough for skew between Lambda hosts, small against a 5-minute ticket).

Tickets: HS256, ``aud="collab-ws"``, ``sub`` user, ``wid`` workspace, ``exp`` at most 5 minutes after
``iat``, and a ``jti`` consumed atomically in Redis, so a ticket opens exactly one connection.
Token text never reaches an error message or a log line: failures say only what was wrong.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from collab.auth import tickets
from collab.auth.tickets import LEEWAY_S, TICKET_AUDIENCE, TICKET_TTL_S, Ticket
from collab.config import Settings
from collab.errors import Unauthorized

__all__ = ["LEEWAY_S", "TICKET_AUDIENCE", "TICKET_TTL_S", "Identity", "Ticket", "issue_ticket"]

ACCESS_ALGS_HS = ["HS256"]
ACCESS_ALGS_JWKS = ["RS256", "ES256"]


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str
    email: str | None = None
    name: str | None = None
    # The token's email_verified claim: True, False, or None when the token does not say.
    email_verified: bool | None = None


JWKS_TTL_S = 300  # a key withdrawn by the identity provider is dropped within 5 minutes
JWKS_MIN_REFRESH_S = 30  # an unknown kid refetches the set at most this often (no fetch per forged kid)


class JwksCache:
    """The identity provider's signing keys by ``kid``, with a TTL. An unknown ``kid`` (a key the
    provider just added) refetches the set, at most once per :data:`JWKS_MIN_REFRESH_S`."""

    def __init__(
        self, url: str, *, ttl_s: float = JWKS_TTL_S, min_refresh_s: float = JWKS_MIN_REFRESH_S
    ) -> None:
        self.client = jwt.PyJWKClient(url, cache_keys=False, cache_jwk_set=False, timeout=5)
        self.ttl_s, self.min_refresh_s = ttl_s, min_refresh_s
        self.keys: dict[str, Any] = {}
        self.fetched = float("-inf")
        self._lock = threading.Lock()

    def _refresh(self, now: float) -> None:
        from collab.errors import Unavailable

        self.fetched = now  # also on failure: a failing provider is not hammered
        try:
            jwk_set = self.client.get_jwk_set(refresh=True)
        except jwt.PyJWKClientError as exc:
            self.keys = {}
            raise Unavailable("identity provider keys unavailable") from exc
        self.keys = {k.key_id: k.key for k in jwk_set.keys if k.key_id}

    def key(self, kid: str | None, *, now: float | None = None) -> Any:
        t = time.monotonic() if now is None else now
        with self._lock:
            age = t - self.fetched
            if age > self.ttl_s or (kid not in self.keys and age > self.min_refresh_s):
                self._refresh(t)
            found = self.keys.get(kid) if kid else None
        if found is None:
            raise Unauthorized("invalid token")
        return found


_jwks_clients: dict[str, JwksCache] = {}
_jwks_lock = threading.Lock()


def _jwks_client(url: str) -> JwksCache:
    with _jwks_lock:
        client = _jwks_clients.get(url)
        if client is None:
            client = JwksCache(url)
            _jwks_clients[url] = client
        return client


def _check_iat(claims: dict[str, Any], now: float) -> None:
    iat = claims.get("iat")
    if not isinstance(iat, int | float) or isinstance(iat, bool):
        raise Unauthorized("token iat is invalid")
    if iat > now + LEEWAY_S:
        raise Unauthorized("token is not yet valid")


def verify_access_token(token: str | None, settings: Settings) -> Identity:
    if not token:
        raise Unauthorized("missing bearer token")
    options = {"require": ["exp", "iat", "sub"]}
    try:
        if settings.jwt_jwks_url:
            kid = jwt.get_unverified_header(token).get("kid")
            key: Any = _jwks_client(settings.jwt_jwks_url).key(kid if isinstance(kid, str) else None)
            algorithms = ACCESS_ALGS_JWKS
        else:
            key, algorithms = settings.jwt_key, ACCESS_ALGS_HS
        claims = jwt.decode(
            token,
            key,
            algorithms=algorithms,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway=LEEWAY_S,
            options=options,  # type: ignore[arg-type]
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("token expired") from None
    except jwt.ImmatureSignatureError:
        raise Unauthorized("token is not yet valid") from None
    except jwt.InvalidAudienceError:
        raise Unauthorized("token audience is wrong") from None
    except jwt.InvalidIssuerError:
        raise Unauthorized("token issuer is wrong") from None
    except jwt.MissingRequiredClaimError as exc:
        raise Unauthorized(f"token lacks the {exc.claim} claim") from None
    except (jwt.PyJWTError, ValueError, TypeError):
        raise Unauthorized("invalid token") from None
    _check_iat(claims, time.time())
    sub = claims.get("sub")
    if not isinstance(sub, str) or not 1 <= len(sub) <= 128:
        raise Unauthorized("token sub is invalid")
    email = claims.get("email")
    name = claims.get("name") or claims.get("cognito:username")
    verified = claims.get("email_verified")
    if isinstance(verified, str):  # Cognito sends "true" / "false" as strings
        verified = {"true": True, "false": False}.get(verified.lower())
    return Identity(
        sub,
        email if isinstance(email, str) else None,
        name if isinstance(name, str) else None,
        verified if isinstance(verified, bool) else None,
    )


def issue_access_token(
    settings: Settings,
    user_id: str,
    *,
    email: str | None = None,
    name: str | None = None,
    ttl_s: int = 12 * 3600,
) -> str:
    """An HS256 access token (for `collab token`, the local stack and tests)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": user_id,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + ttl_s,
    }
    if email:
        claims["email"] = email
    if name:
        claims["name"] = name
    return jwt.encode(claims, settings.jwt_key, algorithm="HS256")


def issue_ticket(settings: Settings, user_id: str, workspace_id: str) -> tuple[str, int]:
    now = int(time.time())
    exp = now + TICKET_TTL_S
    claims = {
        "sub": user_id,
        "wid": workspace_id,
        "aud": TICKET_AUDIENCE,
        "iss": settings.jwt_issuer,
        "iat": now,
        "exp": exp,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, settings.ticket_key, algorithm="HS256"), exp


def verify_ticket(token: str | None, settings: Settings) -> Ticket:
    """Check a ticket's signature and claims (see :mod:`collab.auth.tickets`)."""
    return tickets.verify_ticket(token, settings.ticket_key, settings.jwt_issuer)
