"""``$disconnect``: forget the connection and, when it was its user's last, tell peers they left.

Best-effort, as in API Gateway: when Redis is down the sweeper removes the connection later.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from collab.domain import presence
from collab.errors import CollabError
from collab.observability import logger
from collab.ws.context import connection_id, connection_info, endpoint

if TYPE_CHECKING:
    from collab.runtime import Runtime


def handle(rt: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    cid = connection_id(event)
    try:
        info = connection_info(rt, cid)
        rt.connections.pop(cid, None)  # after the lookup, which caches what it finds
        if info is not None:
            presence.disconnect(rt, rt.gateway_for(endpoint(event)), info)
    except CollabError as exc:  # Redis down: the sweeper removes the connection once it is back
        rt.connections.pop(cid, None)
        logger.warning("disconnect not recorded", extra={"connection_id": cid, "reason": exc.code})
        return {"statusCode": 200}
    logger.info("disconnected", extra={"connection_id": cid, "known": info is not None})
    return {"statusCode": 200}
