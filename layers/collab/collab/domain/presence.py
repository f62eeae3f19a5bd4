"""Presence (contract 3.5): hybrid of connection state and heartbeats.

A user is online in a workspace while at least one of their connections there is announced (a
connection is announced by its first ``sync``; clients send ``sync`` first, so in practice: from the
open). Several tabs are one entry: ``presence.joined`` when the first is announced, ``presence.left``
when the last goes. A connection without a heartbeat for 60 s (two missed 30 s heartbeats) is dead:
it is removed, its user leaves if it was their last, and it is closed at API Gateway. Dead
connections are found by the minute sweeper and, sooner, whenever any peer in the workspace
heartbeats, so one is noticed within 90 s of its last heartbeat.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from collab.adapters.redis.store import ConnInfo, Removed
from collab.clock import iso
from collab.domain import usage, webhook_presence
from collab.protocol.wire import dumps, frame

if TYPE_CHECKING:
    from collab.adapters.apigw.management import ManagementApi
    from collab.runtime import Runtime

DEAD_AFTER_S = 60  # no heartbeat for 60 s: two missed 30 s heartbeats
SWEEP_BATCH = 500  # the sweeper's bounded work per workspace batch


def entry(uid: str, raw: dict[str, Any]) -> dict[str, Any]:
    """The wire form of a presence entry from its Redis record."""
    last = datetime.fromtimestamp(int(raw.get("last_seen_ms", 0)) / 1000, tz=UTC)
    return {
        "user": {"id": uid, "display_name": raw.get("display_name") or uid},
        "status": raw.get("status", "active"),
        "viewing": raw.get("viewing"),
        "last_seen": iso(last),
    }


def snapshot(rt: Runtime, workspace_id: str) -> list[dict[str, Any]]:
    """One entry per online user, ordered by user id."""
    return [entry(uid, raw) for uid, raw in sorted(rt.store.presence(workspace_id).items())]


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
    targets = [c for c in rt.store.fanout_targets(workspace_id) if c != exclude]
    usage.add(rt, workspace_id, posts_out=len(targets))
    receipt = gateway.broadcast(targets, _presence_frame(rt, type_, workspace_id, uid, data))
    if receipt.gone:
        settle(rt, gateway, workspace_id, rt.store.remove_connections(workspace_id, receipt.gone))


def join(rt: Runtime, info: ConnInfo) -> tuple[int, dict[str, Any]]:
    """A connection's first sync makes it a fan-out target and part of its user's presence.
    Returns (1 if its user just came online, 0 if already, -1 if the connection is gone; the entry)."""
    raw = {
        "display_name": info.display_name,
        "status": "active",
        "viewing": None,
        "last_seen_ms": rt.clock.now_ms(),
    }
    return rt.store.announce(info, raw), raw


def announce_joined(rt: Runtime, gateway: ManagementApi, info: ConnInfo, raw: dict[str, Any]) -> None:
    """Tell the workspace that a user came online (and the webhooks that asked)."""
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


def update(rt: Runtime, gateway: ManagementApi, info: ConnInfo, status: str, viewing: str | None) -> None:
    raw = rt.store.set_presence(info.workspace_id, info.user_id, status, viewing, rt.clock.now_ms())
    # Over its budget, a workspace's presence updates are throttled first (stored, sent less often).
    if raw is not None and usage.presence_allowed(rt, info.workspace_id, info.user_id):
        broadcast(
            rt,
            gateway,
            info.workspace_id,
            info.user_id,
            "presence.updated",
            entry(info.user_id, raw),
            exclude=info.connection_id,
        )


def settle(
    rt: Runtime, gateway: ManagementApi, workspace_id: str, removed: list[Removed], *, close: bool = False
) -> None:
    """After connections were removed: close them at API Gateway (when asked) and announce leavers."""
    if close and removed:
        gateway.delete_many([r.connection_id for r in removed])  # all at once, not one by one
    now = rt.clock.utcnow()
    for r in removed:
        if r.left:
            webhook_presence.changed(rt, workspace_id, r.user_id, r.display_name, joined=False)
            data = {
                "user": {"id": r.user_id, "display_name": r.display_name or r.user_id},
                "status": "away",
                "viewing": None,
                "last_seen": iso(now),
            }
            broadcast(rt, gateway, workspace_id, r.user_id, "presence.left", data)


def heartbeat(rt: Runtime, gateway: ManagementApi, info: ConnInfo) -> bool:
    """Refresh a connection; sweep the workspace's dead peers on the way. False if it is gone."""
    now = rt.clock.now_ms()
    alive, removed = rt.store.heartbeat(info, now, now - DEAD_AFTER_S * 1000)
    if removed:
        settle(rt, gateway, info.workspace_id, removed, close=True)
    return alive


def sweep(rt: Runtime, gateway: ManagementApi, *, batch: int = SWEEP_BATCH) -> int:
    """The scheduled sweeper: only connections due (an index ordered by last heartbeat), in batches."""
    cutoff = rt.clock.now_ms() - DEAD_AFTER_S * 1000
    total = 0
    for _ in range(100):  # bounded: at most 100 batches per run
        due = rt.store.due_for_sweep(cutoff, batch)
        if not due:
            break
        found = 0
        for wid, cids in due.items():
            found += len(cids)
            removed = rt.store.sweep_workspace(wid, cids, cutoff)
            total += len(removed)
            settle(rt, gateway, wid, removed, close=True)
        if found < batch:
            break
    return total


def disconnect(rt: Runtime, gateway: ManagementApi, info: ConnInfo) -> None:
    settle(
        rt, gateway, info.workspace_id, rt.store.remove_connections(info.workspace_id, [info.connection_id])
    )


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
