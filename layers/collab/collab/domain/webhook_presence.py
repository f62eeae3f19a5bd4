"""Presence for webhooks: ``presence.joined`` at once, ``presence.left`` only after
:data:`LEAVE_DEBOUNCE_S` without the user coming back (a tab reload is not a leave).

Called from :mod:`collab.domain.presence` on the WebSocket paths, so it touches only Redis and the
queue (never Postgres: ``heartbeat`` must not import psycopg). A leave waits in
``{w:<wid>}:pending_leaves``; a join within the window cancels it and is not sent either. The
worker sends due leaves whenever it runs for the workspace, and the minute tick finds workspaces
with due leaves through the ``collab:webhook_leaves`` index.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from collab.adapters.redis import keys
from collab.observability import logger

if TYPE_CHECKING:
    from collab.runtime import Runtime

LEAVE_DEBOUNCE_S = 30  # a reload reconnects in a second or two; a real leave can wait 30 s
PRESENCE_TYPES = ("presence.joined", "presence.left")
LEAVES = f"{keys.P}webhook_leaves"  # zset wid -> earliest pending leave (ms), for the minute tick


def _hooked(rt: Runtime, wid: str) -> bool:
    return rt.queue is not None and bool(rt.store.r.exists(keys.ws(wid, "webhooks")))


def pending_key(wid: str) -> str:
    return keys.ws(wid, "pending_leaves")


def changed(rt: Runtime, wid: str, uid: str, display_name: str, *, joined: bool) -> None:
    """A user came online in, or left, a workspace (their first or last connection). Never raises."""
    try:
        if not _hooked(rt, wid):
            return
        now = rt.clock.now_ms()
        if not joined:
            rt.store.r.hset(pending_key(wid), uid, json.dumps({"at_ms": now, "display_name": display_name}))
            rt.store.r.zadd(LEAVES, {wid: now}, nx=True)
            return
        if rt.store.r.hdel(pending_key(wid), uid):
            return  # back within the window: neither the leave nor this join happened for receivers
        event = {"type": "presence.joined", "user": {"id": uid, "display_name": display_name}, "at_ms": now}
        assert rt.queue is not None
        rt.queue.send(
            wid, {"kind": "presence", "workspace_id": wid, "event": event}, f"{wid}:join:{uid}:{now}"
        )
    except Exception:  # noqa: BLE001 - presence webhooks are best effort; the presence change stands
        logger.warning("presence webhook failed", extra={"workspace_id": wid})


def due_leaves(rt: Runtime, wid: str) -> list[dict[str, Any]]:
    """Take the workspace's leaves older than the window (each taken once, even with two workers)."""
    cutoff = rt.clock.now_ms() - LEAVE_DEBOUNCE_S * 1000
    out = []
    remaining = None
    for uid_raw, raw in rt.store.r.hgetall(pending_key(wid)).items():
        uid = uid_raw.decode() if isinstance(uid_raw, bytes) else str(uid_raw)
        entry = json.loads(raw)
        if entry["at_ms"] > cutoff:
            remaining = min(remaining or entry["at_ms"], entry["at_ms"])
            continue
        if rt.store.r.hdel(pending_key(wid), uid):
            user = {"id": uid, "display_name": entry.get("display_name") or uid}
            out.append({"type": "presence.left", "user": user, "at_ms": entry["at_ms"]})
    if remaining is None:
        rt.store.r.zrem(LEAVES, wid)
    else:
        rt.store.r.zadd(LEAVES, {wid: remaining})
    return out


def workspaces_with_due_leaves(rt: Runtime, limit: int = 1000) -> list[str]:
    cutoff = rt.clock.now_ms() - LEAVE_DEBOUNCE_S * 1000
    raw = rt.store.r.zrangebyscore(LEAVES, "-inf", cutoff, start=0, num=limit)
    return [w.decode() if isinstance(w, bytes) else str(w) for w in raw]
