"""Presence (contract 3.5, v1.2): connection state, heartbeats and each connection's mode.

A user is online in a workspace while at least one of their connections there is announced (a
connection is announced by its first ``sync``; clients send ``sync`` first, so in practice: from the
open). Several tabs are one entry: ``presence.joined`` when the first is announced, ``presence.left``
when the last goes; the entry's status is ``active`` while any of them is active, ``away`` when all are.

``presence.updated`` goes only to connections that are not away (a tab that comes back gets the
list with its probe's answer); joins and leaves go to all.

Each connection announces its mode (``heartbeat {mode}`` or ``presence.update {status}``): an active
tab heartbeats every 30 s and is dead 60 s after its last sign of life; an away tab (hidden, or idle)
heartbeats every 7 minutes (inside API Gateway's 10-minute idle timeout) and is dead 9.5 minutes
after. The deadline is stored per connection (Redis, scored by it), so the minute sweeper and every
peer's heartbeat find exactly the connections past theirs: a dead active tab is noticed within
90 s of its last heartbeat, a dead away tab within 10.5 minutes.

A user's last connection closing (``$disconnect``) is held for ``LEAVE_GRACE_S`` before peers are
told: a reconnect in that time (a tab reconnecting at API Gateway's 2-hour limit, a network blip)
cancels it, and peers see nothing at all. Leaves found together (a sweep, a fan-out's 410s, the
leaves held in a workspace) go out as one ``presence.batch`` frame rather than one frame each.

Large workspaces (:data:`LARGE_ROOM` synced connections or more at any time in the last 10 minutes,
so that one stays large through a reconnect storm, issue 15): every change would be a
post to every peer, so n users reconnecting at once would cost n^2 posts. There, changes wait in the
workspace's batch (``presence_batch.lua``: the latest change per user) and go out as one
``presence.batch`` frame to everyone at most once per :data:`BATCH_INTERVAL_MS`: posted by the first
change, or heartbeat of any connection of the workspace (``heartbeat.lua`` says when one is due),
that comes after the interval, and by the minute sweeper otherwise. A storm of n reconnects over
t seconds is then at most n x t / interval posts (O(n)), not n^2.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from collab.adapters.redis.store import PRESENCE_BATCH_INTERVAL_MS, Beat, ConnInfo, Removed
from collab.clock import iso
from collab.domain import fanout, usage, webhook_presence
from collab.protocol.wire import dumps, frame, size

if TYPE_CHECKING:
    from collab.adapters.apigw.management import ManagementApi
    from collab.runtime import Runtime

# mode -> (heartbeat interval the client keeps, dead after this long without a sign of life), in s
MODES: dict[str, tuple[int, int]] = {
    "active": (30, 60),  # two missed heartbeats
    "away": (420, 570),  # one interval plus 2.5 minutes for throttled timers in background tabs
}
DEAD_AFTER_S = MODES["active"][1]
SWEEP_BATCH = 500  # the sweeper's bounded work per workspace batch
LEAVE_GRACE_S = 1.0  # a user's leave waits this long for a reconnect that cancels it
LEAVE_GRACE_STEPS = 10  # $disconnect looks every 100 ms whether it was cancelled
EDITING_TTL_S = 15  # v1.3: an editing indicator expires this long after its last refresh
# From this many synced connections, a workspace's presence changes are batched: about where one
# fan-out needs more than three waves of posts, and where a fan-out is split (collab.domain.fanout).
LARGE_ROOM = fanout.CHUNK
# At most one presence frame per this long in a large workspace: a join still reaches peers within
# about a second (the interval, then the next heartbeat of any of its connections posts the batch).
BATCH_INTERVAL_MS = PRESENCE_BATCH_INTERVAL_MS
# A WebSocket reply's share for the presence list (sync, a probe's answer): a quarter of the 128 KB a
# message may hold. ~180 users of typical names fit; a larger workspace's list is read over HTTP.
PRESENCE_BYTES = 32 * 1024


def deadline_ms(rt: Runtime, mode: str) -> int:
    return rt.clock.now_ms() + MODES.get(mode, MODES["active"])[1] * 1000


def entry(uid: str, raw: dict[str, Any], editing: dict[str, Any] | None = None) -> dict[str, Any]:
    """The wire form of a presence entry from its Redis record (with ``editing`` in snapshots)."""
    last = datetime.fromtimestamp(int(raw.get("last_seen_ms", 0)) / 1000, tz=UTC)
    out = {
        "user": {"id": uid, "display_name": raw.get("display_name") or uid},
        "status": raw.get("status", "active"),
        "viewing": raw.get("viewing"),
        "last_seen": iso(last),
    }
    if editing is not None:
        out["editing"] = _editing_wire(editing)
    return out


def _editing_wire(indicator: dict[str, Any]) -> dict[str, Any]:
    expires = datetime.fromtimestamp(int(indicator["exp"]) / 1000, tz=UTC)
    return {"task_id": indicator["task_id"], "field": indicator["field"], "expires_at": iso(expires)}


def snapshot(rt: Runtime, workspace_id: str) -> list[dict[str, Any]]:
    """One entry per online user, ordered by user id; v1.3: with what they are editing, if anything."""
    entries, editing = rt.store.presence_and_editing(workspace_id, rt.clock.now_ms())
    return [entry(uid, raw, editing.get(uid)) for uid, raw in sorted(entries.items())]


def snapshot_within(
    rt: Runtime, workspace_id: str, budget: int = PRESENCE_BYTES
) -> tuple[list[dict[str, Any]], bool]:
    """The presence list for a WebSocket reply: whole when it fits ``budget`` UTF-8 bytes; else
    the active users first, then the rest, by user id, as many as fit, and True: the client reads the
    whole list over HTTP (``more_presence``)."""
    entries = snapshot(rt, workspace_id)
    if size(entries) <= budget:
        return entries, False
    out: list[dict[str, Any]] = []
    used = 2  # the brackets
    for e in sorted(entries, key=lambda e: (e["status"] != "active", e["user"]["id"])):
        cost = size(e) + 1  # and its comma
        if used + cost > budget:
            break
        out.append(e)
        used += cost
    return out, True


def _presence_frame(rt: Runtime, type_: str, workspace_id: str, uid: str, data: dict[str, Any]) -> bytes:
    return dumps(frame(type_, workspace_id, uid, iso(rt.clock.utcnow()), data)).encode()


def broadcast(
    rt: Runtime,
    gateway: ManagementApi,
    workspace_id: str,
    uid: str,
    type_: str,
    data: dict[str, Any],
    *,
    exclude: str | None = None,
) -> None:
    """One presence change to the workspace. A ``presence.updated`` (status, viewing) reaches only
    connections that are not away: nobody is looking at a hidden tab, and one that comes back gets
    the whole list with the answer to its probe (``heartbeat.ack {presence}``). Joins and leaves
    reach every connection."""
    if _batched(rt, gateway, workspace_id, [(type_, uid, data)]):
        return
    active_only = type_ == "presence.updated"
    targets = [c for c in rt.store.fanout_targets(workspace_id, active_only=active_only) if c != exclude]
    usage.add(rt, workspace_id, posts_out=len(targets))
    receipt = gateway.broadcast(targets, _presence_frame(rt, type_, workspace_id, uid, data))
    if receipt.gone:
        settle(rt, gateway, workspace_id, rt.store.remove_connections(workspace_id, receipt.gone))


def broadcast_many(
    rt: Runtime, gateway: ManagementApi, workspace_id: str, changes: list[tuple[str, str, dict[str, Any]]]
) -> None:
    """Several presence changes of one workspace (type, user id, entry) to every announced
    connection: one ``presence.batch`` frame for all of them (one post per peer, not one per change);
    a single change goes as its own frame, as in v1."""
    if not changes:
        return
    if len(changes) == 1:
        type_, uid, data = changes[0]
        broadcast(rt, gateway, workspace_id, uid, type_, data)
        return
    if _batched(rt, gateway, workspace_id, changes):
        return
    post_batch(rt, gateway, workspace_id, changes)


def _batched(
    rt: Runtime, gateway: ManagementApi, workspace_id: str, changes: list[tuple[str, str, dict[str, Any]]]
) -> bool:
    """In a large workspace, the changes join its batch, which is posted now if its interval has
    passed. False in a small one: the caller posts them as before."""
    mode, due = rt.store.batch_presence(workspace_id, changes, rt.clock.now_ms(), threshold=LARGE_ROOM)
    if mode == "direct":
        return False
    if mode == "flush":
        post_batch(rt, gateway, workspace_id, due)
    return True


def post_batch(
    rt: Runtime, gateway: ManagementApi, workspace_id: str, changes: list[tuple[str, str, dict[str, Any]]]
) -> None:
    """One ``presence.batch`` frame with the changes to every synced connection (split across
    fan-out invocations in a large workspace)."""
    if not changes:
        return
    events = [{"type": t, "user_id": uid, "data": data} for t, uid, data in changes]
    payload = dumps(frame("presence.batch", workspace_id, None, iso(rt.clock.utcnow()), {"events": events}))
    targets = rt.store.fanout_targets(workspace_id)
    usage.add(rt, workspace_id, posts_out=len(targets))
    receipt, _ = fanout.deliver(rt, gateway, workspace_id, targets, payload.encode())
    if receipt.gone:
        settle(rt, gateway, workspace_id, rt.store.remove_connections(workspace_id, receipt.gone))


def flush_batch(rt: Runtime, gateway: ManagementApi, workspace_id: str) -> None:
    """Post a large workspace's presence batch if its interval has passed."""
    mode, due = rt.store.batch_presence(workspace_id, [], rt.clock.now_ms(), threshold=LARGE_ROOM)
    if mode == "flush":
        post_batch(rt, gateway, workspace_id, due)


def join(rt: Runtime, info: ConnInfo) -> tuple[int, dict[str, Any]]:
    """A connection's first sync makes it a fan-out target and part of its user's presence.
    Returns (1 if its user just came online, 2 if they did within the grace of their leave (the
    entry then holds the one peers still show under ``held``), 0 if already online, -1 if the
    connection is gone; the entry)."""
    raw: dict[str, Any] = {
        "display_name": info.display_name,
        "status": "active",
        "viewing": None,
        "last_seen_ms": rt.clock.now_ms(),
    }
    result, held = rt.store.announce(info, raw)
    if result == 2:
        return 2, {**raw, "held": held}
    return result, raw


def announce_joined(rt: Runtime, gateway: ManagementApi, info: ConnInfo, raw: dict[str, Any]) -> None:
    """Tell the workspace that a user came online. Not after a reconnect within the grace: peers
    never saw them leave, their entry is as peers last saw it, and the client's first frames after
    its sync (a heartbeat naming its mode, ``presence.update`` for what it views) announce what
    differs, if anything."""
    if raw.get("held") is not None:
        return
    webhook_presence.changed(rt, info.workspace_id, info.user_id, info.display_name, joined=True)
    broadcast(
        rt,
        gateway,
        info.workspace_id,
        info.user_id,
        "presence.joined",
        entry(info.user_id, raw),
        exclude=info.connection_id,
    )


def update(rt: Runtime, gateway: ManagementApi, info: ConnInfo, status: str, viewing: str | None) -> bool:
    """``presence.update``: the connection's status is its mode; peers hear of it when the user's
    entry changed. False when the user is not online (nothing stored)."""
    raw, changed = rt.store.set_presence(info, status, viewing, rt.clock.now_ms(), deadline_ms(rt, status))
    # Over its budget, a workspace's presence updates are throttled first (stored, sent less often).
    if raw is not None and changed and usage.presence_allowed(rt, info.workspace_id, info.user_id):
        broadcast(
            rt,
            gateway,
            info.workspace_id,
            info.user_id,
            "presence.updated",
            entry(info.user_id, raw),
            exclude=info.connection_id,
        )
    return raw is not None


def update_editing(
    rt: Runtime,
    gateway: ManagementApi,
    info: ConnInfo,
    status: str,
    viewing: str | None,
    target: tuple[str, str] | None,
) -> None:
    """v1.3 ``presence.update`` carrying ``editing``: the status and viewing as any presence update,
    then the indicator, set (or refreshed: it expires ``EDITING_TTL_S`` after this) or, with None,
    cleared (when this connection set it). Peers get ``presence.editing``. Never in Postgres."""
    wid, uid, cid = info.workspace_id, info.user_id, info.connection_id
    if not update(rt, gateway, info, status, viewing):  # not online (never synced): nobody to tell
        return
    if target is None:
        if rt.store.clear_editing(wid, {cid}):
            _editing_broadcast(rt, gateway, wid, uid, info.display_name, None, exclude=cid)
        return
    now = rt.clock.now_ms()
    indicator = {"task_id": target[0], "field": target[1], "cid": cid, "exp": now + EDITING_TTL_S * 1000}
    rt.store.set_editing(wid, uid, indicator, EDITING_TTL_S * 1000)
    _editing_broadcast(rt, gateway, wid, uid, info.display_name, indicator, exclude=cid)


def _editing_broadcast(
    rt: Runtime,
    gateway: ManagementApi,
    workspace_id: str,
    uid: str,
    name: str,
    indicator: dict[str, Any] | None,
    *,
    exclude: str | None = None,
) -> None:
    """``presence.editing {user, editing}`` to the workspace's connections that are not away."""
    data = {
        "user": {"id": uid, "display_name": name or uid},
        "editing": None if indicator is None else _editing_wire(indicator),
    }
    targets = [c for c in rt.store.fanout_targets(workspace_id, active_only=True) if c != exclude]
    if not targets:
        return
    usage.add(rt, workspace_id, posts_out=len(targets))
    receipt = gateway.broadcast(targets, _presence_frame(rt, "presence.editing", workspace_id, uid, data))
    if receipt.gone:
        settle(rt, gateway, workspace_id, rt.store.remove_connections(workspace_id, receipt.gone))


def _left(uid: str, raw: dict[str, Any] | None, name: str, now: datetime) -> dict[str, Any]:
    return {
        "user": {"id": uid, "display_name": name or (raw or {}).get("display_name") or uid},
        "status": "away",
        "viewing": None,
        "last_seen": iso(now),
    }


def settle(
    rt: Runtime,
    gateway: ManagementApi,
    workspace_id: str,
    removed: list[Removed],
    *,
    close: bool = False,
    hold: bool = False,
) -> None:
    """After connections were removed: close them at API Gateway (when asked) and tell peers who left
    or changed status, in one frame. With ``hold`` (``$disconnect``), leaves are held for the grace
    instead (:func:`flush_leaves` sends them)."""
    if close and removed:
        gateway.delete_many([r.connection_id for r in removed])  # all at once, not one by one
    if removed:  # v1.3: what they were editing ends with the connection (a leave says it for the rest)
        still_here = {r.user_id: r.display_name for r in removed if not r.left}
        for uid in rt.store.clear_editing(workspace_id, {r.connection_id for r in removed}):
            if uid in still_here:
                _editing_broadcast(rt, gateway, workspace_id, uid, still_here[uid], None)
    now = rt.clock.utcnow()
    changes: list[tuple[str, str, dict[str, Any]]] = []
    for r in removed:
        if r.left:  # webhooks debounce leaves themselves (a reload within 30 s is no leave)
            webhook_presence.changed(rt, workspace_id, r.user_id, r.display_name, joined=False)
        if r.left and hold:
            rt.store.hold_leave(workspace_id, r.user_id, r.entry or {}, rt.clock.now_ms())
        elif r.left:
            changes.append(("presence.left", r.user_id, _left(r.user_id, r.entry, r.display_name, now)))
        elif r.updated is not None:
            changes.append(("presence.updated", r.user_id, entry(r.user_id, r.updated)))
    broadcast_many(rt, gateway, workspace_id, changes)


def flush_leaves(rt: Runtime, gateway: ManagementApi, workspace_id: str, *, wait: bool) -> None:
    """Tell peers of the leaves held in a workspace for the grace (after waiting it out, with
    ``wait``); a reconnect meanwhile has taken its user's out."""
    if wait:  # in steps, to stop as soon as the reconnect has taken the leave out (billed time)
        for _ in range(LEAVE_GRACE_STEPS):
            rt.clock.sleep(LEAVE_GRACE_S / LEAVE_GRACE_STEPS)
            if not rt.store.leaves_held(workspace_id):
                return
    now = rt.clock.utcnow()
    due = rt.clock.now_ms() - int(LEAVE_GRACE_S * 1000)
    taken = rt.store.take_leaves(workspace_id, due)
    broadcast_many(
        rt, gateway, workspace_id, [("presence.left", uid, _left(uid, raw, "", now)) for uid, raw in taken]
    )


def heartbeat(rt: Runtime, gateway: ManagementApi, info: ConnInfo, mode: str | None = None) -> Beat:
    """Move a connection's deadline (by the mode it names, or the one it had: a v1 heartbeat names none);
    sweep the workspace's dead peers on the way; tell peers when the mode changed its user's status."""
    deadlines = (deadline_ms(rt, "active"), deadline_ms(rt, "away"))
    beat = rt.store.heartbeat(info, rt.clock.now_ms(), deadlines, mode)
    if beat.batch_due:  # a large workspace's presence changes have waited their interval
        flush_batch(rt, gateway, info.workspace_id)
    if beat.removed:
        settle(rt, gateway, info.workspace_id, beat.removed, close=True)
    if beat.updated is not None:
        broadcast(
            rt,
            gateway,
            info.workspace_id,
            info.user_id,
            "presence.updated",
            entry(info.user_id, beat.updated),
            exclude=info.connection_id,
        )
    return beat


def sweep(rt: Runtime, gateway: ManagementApi, *, batch: int = SWEEP_BATCH) -> int:
    """The scheduled sweeper: only connections past their deadline (an index ordered by it), in
    batches; and the leaves held longer than the grace, should whoever held them have died."""
    now = rt.clock.now_ms()
    total = 0
    for _ in range(100):  # bounded: at most 100 batches per run
        due = rt.store.due_for_sweep(now, batch)
        if not due:
            break
        found = 0
        for wid, cids in due.items():
            found += len(cids)
            removed = rt.store.sweep_workspace(wid, cids, now)
            total += len(removed)
            settle(rt, gateway, wid, removed, close=True)
        if found < batch:
            break
    for wid in rt.store.workspaces_with_leaves(now - int(LEAVE_GRACE_S * 1000)):
        flush_leaves(rt, gateway, wid, wait=False)
    for wid in rt.store.workspaces_with_batches(now - BATCH_INTERVAL_MS):
        flush_batch(rt, gateway, wid)
    return total


def disconnect(rt: Runtime, gateway: ManagementApi, info: ConnInfo) -> None:
    """``$disconnect``: the connection goes at once; its user's leave (if it was their last) is
    held for the grace, then sent unless they reconnected meanwhile."""
    wid = info.workspace_id
    removed = rt.store.remove_connections(wid, [info.connection_id])
    settle(rt, gateway, wid, removed, hold=True)
    if any(r.left for r in removed):
        flush_leaves(rt, gateway, wid, wait=True)


def close_user(rt: Runtime, gateway: ManagementApi, workspace_id: str, user_id: str) -> int:
    """Close every connection of a user to a workspace at once (member removed, workspace deleted)."""
    # registered ones, announced or not: one still in its $connect must not survive either
    cids = [cid for cid, uid in rt.store.workspace_connections(workspace_id).items() if uid == user_id]
    removed = rt.store.remove_connections(workspace_id, cids)
    if cids:
        gateway.delete_many(cids)
    for cid in cids:
        rt.connections.pop(cid, None)
    settle(rt, gateway, workspace_id, removed)
    return len(cids)
