"""``$connect``: ticket, rate limit, single use, membership, registration (200 / 401 / 403 / 429).

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

CONNECT_LIMIT = 30  # connection attempts per minute per user: room for reconnect storms, not floods


def handle(rt: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    cid = connection_id(event)
    token = (event.get("queryStringParameters") or {}).get("token")
    try:
        ticket = verify_ticket(token, rt.settings.jwt_key, rt.settings.jwt_issuer)
        now = rt.clock.now_ms()
        kind, retry = rt.store.begin(
            ticket.user_id, bucket="connrl", limit=CONNECT_LIMIT, window_ms=WINDOW_MS, now_ms=now
        )
        if kind == "limited":
            raise RateLimited("too many connection attempts", retry_after_ms=int(retry))
        ttl_ms = max(1000, (ticket.expires_at + LEEWAY_S) * 1000 - int(time.time() * 1000))
        if not rt.store.consume_ticket(ticket.jti, ttl_ms):
            raise Unauthorized("ticket already used")
        name = _member_name(rt, ticket.workspace_id, ticket.user_id)
        info = ConnInfo(cid, ticket.workspace_id, ticket.user_id, name, now)
        rt.store.register(info, now)
        # A removal that committed between the check above and the registration may already have
        # closed the user's connections (presence.close_user) without seeing this one: look again.
        try:
            _member_name(rt, ticket.workspace_id, ticket.user_id)
        except Forbidden:
            rt.store.remove_connections(ticket.workspace_id, [cid])
            raise
        rt.remember(info)
    except CollabError as exc:
        logger.info("connect refused", extra={"connection_id": cid, "status": exc.status, "reason": exc.code})
        metrics.add_metric(name="ConnectRefused", unit=MetricUnit.Count, value=1)
        return {"statusCode": exc.status, "body": dumps({"error": exc.to_wire()})}
    logger.info("connected", extra={"connection_id": cid, "workspace_id": info.workspace_id})
    metrics.add_metric(name="Connections", unit=MetricUnit.Count, value=1)
    return {"statusCode": 200}


def _member_name(rt: Runtime, wid: str, uid: str) -> str:
    def tx(cur: Any) -> str:
        row = cur.execute(
            "SELECT u.display_name, u.email FROM workspace_members m JOIN users u ON u.id = m.user_id"
            " WHERE m.workspace_id = %s AND m.user_id = %s",
            (wid, uid),
        ).fetchone()
        if row is None:
            raise Forbidden("not a member of this workspace")
        return str(row["display_name"] or row["email"] or uid)

    return rt.db.run(tx)
