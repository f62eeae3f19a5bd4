"""``$connect``: origin, ticket, rate limit, single use, registration (200 / 401 / 403 / 429).

Redis only: a cold ``$connect`` imports no psycopg and opens no connection to Postgres. What needs
Postgres - the ticket recorded as used for good, the membership, the member's name - is done by the
connection's first frame (:mod:`collab.domain.admission`), before that frame is served.

The connection is registered here but becomes a fan-out target only on its first ``sync``: API
Gateway answers 410 to posts until ``$connect`` has returned (docs/architecture.md).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from collab.adapters.redis.store import ConnInfo
from collab.auth.tickets import LEEWAY_S, verify_ticket
from collab.errors import CollabError, Forbidden, RateLimited, Unauthorized
from collab.observability import MetricUnit, logger, metrics
from collab.protocol.wire import dumps
from collab.ws.context import WINDOW_MS, connection_id

if TYPE_CHECKING:
    from collab.runtime import Runtime


def handle(rt: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    cid = connection_id(event)
    token = (event.get("queryStringParameters") or {}).get("token")
    try:
        if not rt.settings.origin_allowed(_header(event, "origin")):
            raise Forbidden("origin not allowed")
        ticket = verify_ticket(token, rt.settings.ticket_key, rt.settings.jwt_issuer)
        now = rt.clock.now_ms()
        kind, retry = rt.store.begin(
            ticket.user_id,
            bucket="connrl",
            limit=rt.settings.limits.connect_attempts_per_minute,
            window_ms=WINDOW_MS,
            now_ms=now,
        )
        if kind == "limited":
            raise RateLimited("too many connection attempts", retry_after_ms=int(retry))
        ttl_ms = max(1000, (ticket.expires_at + LEEWAY_S) * 1000 - int(time.time() * 1000))
        if not rt.store.consume_ticket(ticket.jti, ttl_ms):  # admission records it for good
            raise Unauthorized("ticket already used")
        # named at admission (its first frame), from the membership it checks
        spent_until = ticket.expires_at + LEEWAY_S
        info = ConnInfo(cid, ticket.workspace_id, ticket.user_id, "", now, ticket.jti, spent_until)
        limits = rt.settings.limits
        refused = rt.store.register(
            info,
            now,
            per_user=limits.connections_per_user_workspace,
            per_workspace=limits.connections_per_workspace,
        )
        if refused:
            raise RateLimited(f"too many live connections ({refused})", retry_after_ms=WINDOW_MS)
        rt.remember(info)
    except CollabError as exc:
        logger.info("connect refused", extra={"connection_id": cid, "status": exc.status, "reason": exc.code})
        metrics.add_metric(name="ConnectRefused", unit=MetricUnit.Count, value=1)
        return {"statusCode": exc.status, "body": dumps({"error": exc.to_wire()})}
    logger.info("connected", extra={"connection_id": cid, "workspace_id": info.workspace_id})
    metrics.add_metric(name="Connections", unit=MetricUnit.Count, value=1)
    return {"statusCode": 200}


def _header(event: dict[str, Any], name: str) -> str | None:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name:
            return str(value)
    return None
