"""``sync``: replay every event after the client's ``since``, in order, plus presence and the
notifications it has not yet received.

Events come from Redis for the latest 100 and from the Postgres activity log beyond that. Redis is
only trusted for the contiguous run of seqs that ends at the workspace's latest seq (a commit whose
event has not reached Redis yet, or a Redis restart, leaves holes, which Postgres fills).
``resync: true`` only when the log cannot cover the range (the client claims a seq the workspace
never reached).

A WebSocket message is at most 128 KB (``wire.MESSAGE_LIMIT``), so the reply is budgeted in UTF-8
bytes: the presence list first (at most ``presence.PRESENCE_BYTES``, 32 KB: a larger workspace's
list is cut, active users first, and ``more_presence`` tells the client to read it over HTTP), then
events, oldest first, at most ``MAX_EVENTS`` and ``MAX_BYTES`` of them but always one when any is
due (an event is at most ~45 KB: a 200-character title and a 10,000-character description of 4-byte
characters), then notifications in what is left. Both are paged: when ``data.seq`` is beyond the
last event in the reply, or ``data.more_notifications`` is true, the client syncs again (contract
v1.2). Only the notifications in the reply are marked delivered.
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
from collab.protocol.wire import MESSAGE_LIMIT, size

if TYPE_CHECKING:
    from collab.adapters.apigw.management import ManagementApi
    from collab.runtime import Runtime

MAX_EVENTS = 500  # and at most MAX_BYTES: a reply must fit in one 128 KB WebSocket message
MAX_BYTES = 96 * 1024  # events' share at most; presence and notifications share the rest
# The frame around the data: type, workspace id, user id (at most 128 characters), timestamp, seq,
# resync, the keys and brackets: under 600 bytes; 2 KB leaves a margin for the keys added later.
ENVELOPE_BYTES = 2048


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
    # The snapshot is taken after joining, so a peer who comes online later is announced to us.
    members, more_presence = presence.snapshot_within(rt, wid)
    budget = MESSAGE_LIMIT - ENVELOPE_BYTES - size(members)

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
        if resync:
            events = []
        events, used = _cap(events, min(MAX_BYTES, budget))
        notes, more = notifications.claim_undelivered(cur, info.user_id, budget - used)
        return {"seq": last, "events": events, "resync": resync, "notifications": notes, "more": more}

    try:
        data = rt.db.run(tx)
    except Forbidden:  # no longer a member: this connection must not stay a target
        presence.settle(rt, gateway, wid, rt.store.remove_connections(wid, [info.connection_id]))
        raise
    if came_online > 0:  # 2: back within the grace of their leave (presence.announce_joined)
        presence.announce_joined(rt, gateway, info, raw)
    return {
        "seq": data["seq"],
        "events": data["events"],
        "resync": data["resync"],
        "presence": members,
        "notifications": data["notifications"],
        "more_notifications": data["more"],
        "more_presence": more_presence,
    }


def _cap(events: list[dict[str, Any]], budget: int) -> tuple[list[dict[str, Any]], int]:
    """The oldest events within ``budget`` UTF-8 bytes (and ``MAX_EVENTS``), at least one; their size."""
    out: list[dict[str, Any]] = []
    used = 0
    for ev in events[:MAX_EVENTS]:
        cost = size(ev) + 1  # and its comma
        if out and used + cost > budget:
            break
        used += cost
        out.append(ev)
    return out, used
