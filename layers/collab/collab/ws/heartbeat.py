"""``heartbeat``: refresh the connection's presence, sweep dead peers, answer ``heartbeat.ack``.

A heartbeat may carry ``seq``, the last event the client applied: the delivery tracer shows it
(docs/operations.md). Only then is the body parsed, and it costs one more Redis command.
"""

from __future__ import annotations

import json
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
    assert info is not None
    _acknowledge(rt, info.workspace_id, cid, event.get("body"))
    return reply(rt, "heartbeat.ack", {}, info)


def _acknowledge(rt: Runtime, wid: str, cid: str, body: Any) -> None:
    if not isinstance(body, str) or '"seq"' not in body or len(body) > 1024:
        return
    try:
        seq = json.loads(body).get("seq")
        if isinstance(seq, int) and not isinstance(seq, bool) and 0 <= seq < 2**63:
            from collab.adapters.redis import trace

            trace.acknowledge(rt.store.r, wid, cid, seq)
    except (ValueError, AttributeError, CollabError):
        pass  # a malformed seq is ignored: the heartbeat itself succeeded
    except Exception:  # noqa: BLE001 - Redis hiccup on an optional report: the ack still goes out
        pass
