"""``sync``: replay every event after the client's ``since``, in order, plus presence and the
notifications it has not yet received.

Events come from Redis for the latest 100 and from the Postgres activity log beyond that. Redis is
only trusted for the contiguous run of seqs that ends at the workspace's latest seq (a commit whose
event has not reached Redis yet, or a Redis restart, leaves holes, which Postgres fills).
``resync: true`` only when the log cannot cover the range (the client claims a seq the workspace
never reached). A reply carries at most ``MAX_EVENTS`` events and ``MAX_BYTES`` of them, oldest
first, because a WebSocket message is at most 128 KB: when ``data.seq`` is beyond the last event in
the reply, the client syncs again from there.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from collab.adapters.postgres.database import Cursor
from collab.adapters.redis.store import ConnInfo
from collab.domain import notifications, presence
from collab.domain.access import require_member
from collab.domain.events import activity_frame
from collab.errors import Forbidden
from collab.protocol.wire import dumps

if TYPE_CHECKING:
    from collab.adapters.apigw.management import ManagementApi
    from collab.runtime import Runtime

MAX_EVENTS = 500  # and at most MAX_BYTES: a reply must fit in one 128 KB WebSocket message
MAX_BYTES = 96 * 1024  # leaves room for presence and notifications under API Gateway's 128 KB


def _contiguous_tail(hist: list[tuple[int, str]], last: int) -> dict[int, str]:
    """The longest run of seqs in Redis ending exactly at ``last``."""
    have = {seq: ev for seq, ev in hist if seq <= last}
    out: dict[int, str] = {}
    seq = last
    while seq in have:
        out[seq] = have[seq]
        seq -= 1
    return out


def sync(rt: Runtime, gateway: ManagementApi, info: ConnInfo, since: int | None) -> dict[str, Any]:
    """The ``data`` of the sync reply (and the presence announcement of a connection's first sync)."""
    wid = info.workspace_id
    # Become a fan-out target before reading the latest seq: an event committed after that read is
    # then posted to this connection, and one committed before it is in this reply. No gap.
    came_online, raw = presence.join(rt, info)
    hist = rt.store.history(wid, since) if since is not None else []

    def tx(cur: Cursor) -> dict[str, Any]:
        require_member(cur, wid, info.user_id)
        row = cur.execute("SELECT last_seq FROM workspaces WHERE id = %s", (wid,)).fetchone()
        assert row is not None
        last = int(row["last_seq"])
        events: list[Any] = []
        resync = False
        if since is not None and since > last:
            resync = True
        elif since is not None and since < last:
            cached = _contiguous_tail(hist, last)
            first_cached = min(cached) if cached else last + 1
            need_db = first_cached - since - 1
            if need_db > 0:
                rows = cur.execute(
                    "SELECT workspace_id, seq, actor_id, type, payload, created_at FROM activity"
                    " WHERE workspace_id = %s AND seq > %s AND seq < %s ORDER BY seq LIMIT %s",
                    (wid, since, first_cached, MAX_EVENTS),
                ).fetchall()
                if not rows or int(rows[0]["seq"]) != since + 1:
                    resync = True  # the log no longer holds what the client is missing
                else:
                    events = [activity_frame(r) for r in rows]
            if not resync and len(events) < MAX_EVENTS and (need_db <= 0 or len(events) == need_db):
                events += [json.loads(cached[s]) for s in sorted(cached) if s > since]
            events = _cap(events)
        notes = notifications.claim_undelivered(cur, info.user_id)
        return {"seq": last, "events": [] if resync else events, "resync": resync, "notifications": notes}

    try:
        data = rt.db.run(tx)
    except Forbidden:  # no longer a member: this connection must not stay a target
        presence.settle(rt, gateway, wid, rt.store.remove_connections(wid, [info.connection_id]))
        raise
    if came_online > 0:  # 2: back within the grace of their leave (presence.announce_joined)
        presence.announce_joined(rt, gateway, info, raw)
    data["presence"] = presence.snapshot(rt, wid)
    return {k: data[k] for k in ("seq", "events", "resync", "presence", "notifications")}


def _cap(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    size = 0
    for ev in events[:MAX_EVENTS]:
        size += len(dumps(ev))
        if out and size > MAX_BYTES:
            break
        out.append(ev)
    return out
