"""``heartbeat``: refresh the connection's presence, sweep dead peers, answer ``heartbeat.ack``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from collab.domain import presence
from collab.errors import CollabError, RateLimited
from collab.ws.context import WINDOW_MS, connection_id, connection_info, endpoint, error, gone, reply

if TYPE_CHECKING:
    from collab.adapters.redis.store import ConnInfo
    from collab.runtime import Runtime


def _budget(rt: Runtime, info: ConnInfo) -> None:
    """Heartbeats have their own small budget per connection (one every 30 s is the protocol), so
    they cannot be used to invoke Lambda for free."""
    limit = rt.settings.limits.heartbeats_per_minute
    kind, retry = rt.store.begin(
        info.user_id,
        bucket=f"hb:{info.connection_id}",
        limit=limit,
        window_ms=WINDOW_MS,
        now_ms=rt.clock.now_ms(),
    )
    if kind == "limited":
        raise RateLimited(f"rate limit: {limit} heartbeats per minute", retry_after_ms=int(retry))


def handle(rt: Runtime, event: dict[str, Any], *, budget: bool = True) -> dict[str, Any]:
    cid = connection_id(event)
    gateway = rt.gateway_for(endpoint(event))
    try:
        info = connection_info(rt, cid)
        if info is not None and budget:
            _budget(rt, info)
        alive = info is not None and presence.heartbeat(rt, gateway, info)
    except CollabError as exc:  # Redis down: answered (internal), the connection stays
        return error(rt, exc, rt.connections.get(cid))
    if not alive:
        return gone(rt, gateway, cid)
    return reply(rt, "heartbeat.ack", {}, info)
