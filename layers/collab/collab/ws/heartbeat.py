"""``heartbeat``: refresh the connection's presence, sweep dead peers, answer ``heartbeat.ack``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from collab.domain import presence
from collab.errors import CollabError
from collab.ws.context import connection_id, connection_info, endpoint, error, gone, reply

if TYPE_CHECKING:
    from collab.runtime import Runtime


def handle(rt: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    cid = connection_id(event)
    gateway = rt.gateway_for(endpoint(event))
    try:
        info = connection_info(rt, cid)
        alive = info is not None and presence.heartbeat(rt, gateway, info)
    except CollabError as exc:  # Redis down: answered (internal), the connection stays
        return error(rt, exc, rt.connections.get(cid))
    if not alive:
        return gone(rt, gateway, cid)
    return reply(rt, "heartbeat.ack", {}, info)
