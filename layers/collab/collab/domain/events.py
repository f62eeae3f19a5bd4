"""Workspace events: recorded inside a mutation's transaction, published after its commit.

Inside the transaction (:func:`record`, :func:`notify`): the workspace row's
counter gives the next ``seq`` (its row lock orders concurrent mutations, so seq order is commit
order and seqs are contiguous); the activity row and any notifications are written with it.

After the commit (:func:`publish`): the event is appended to the workspace's Redis history (the
last 100, replayed by ``sync``) and fanned out to every synced connection of the workspace but the
actor's own (which gets the ``ack``); notifications are pushed to every live connection of their
recipient and marked delivered only where a post succeeded. Connections found gone are pruned. A
fan-out to more than 100 connections is split across invocations (:mod:`collab.domain.fanout`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from collab.adapters.postgres.database import Cursor
from collab.clock import iso
from collab.models import Notification
from collab.protocol.wire import dumps, frame

if TYPE_CHECKING:
    from collab.adapters.apigw.management import ManagementApi, Receipt
    from collab.runtime import Runtime


@dataclass(slots=True)
class Committed:
    """What a committed mutation has to publish."""

    workspace_id: str | None
    event: dict[str, Any] | None = None
    notifications: list[dict[str, Any]] = field(default_factory=list)  # each: {"user_id", "notification"}
    # v1.3: frames for one user's connections in the workspace (``task.overwritten``): (user id, frame)
    notices: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def record(
    cur: Cursor,
    workspace_id: str,
    actor_id: str,
    type_: str,
    data: dict[str, Any],
    task_id: str | None = None,
    *,
    changes: dict[str, Any] | None = None,
    kind: str | None = None,
    target_seq: int | None = None,
) -> dict[str, Any]:
    """Take the next seq, write the activity row, and return the event frame (one statement).
    A task change's row also says what changed (``changes``: field -> {from, to}), what the actor
    did (``kind``) and, for undo and redo, which change they revert or re-apply (``target_seq``)."""
    row = cur.execute(
        "WITH s AS (UPDATE workspaces SET last_seq = last_seq + 1 WHERE id = %s RETURNING last_seq)"
        " INSERT INTO activity"
        " (workspace_id, seq, actor_id, type, task_id, payload, changes, kind, target_seq)"
        " SELECT %s, last_seq, %s, %s, %s, %s, %s, %s, %s FROM s RETURNING seq, created_at",
        (
            workspace_id,
            workspace_id,
            actor_id,
            type_,
            task_id,
            json.dumps(data),
            None if changes is None else json.dumps(changes),
            kind,
            target_seq,
        ),
    ).fetchone()
    assert row is not None
    return frame(type_, str(workspace_id), actor_id, iso(row["created_at"]), data, int(row["seq"]))


def activity_frame(row: dict[str, Any]) -> dict[str, Any]:
    """The event frame of an activity row (replay from Postgres)."""
    return frame(
        row["type"],
        str(row["workspace_id"]),
        row["actor_id"],
        iso(row["created_at"]),
        row["payload"],
        row["seq"],
    )


def notify(
    cur: Cursor,
    user_id: str | None,
    type_: str,
    *,
    actor_id: str,
    workspace_id: str | None,
    task_id: str | None = None,
    payload: dict[str, Any] | None = None,
    members_only: bool = False,
) -> dict[str, Any] | None:
    """Write a notification (never to the actor about their own action). With ``members_only``, only
    to a member of ``workspace_id``: a removed member hears nothing more of it (contract 4)."""
    if not user_id or user_id == actor_id:
        return None
    args: tuple[Any, ...] = (user_id, type_, workspace_id, task_id, actor_id, json.dumps(payload or {}))
    values = "VALUES (%s, %s, %s, %s, %s, %s)"
    if members_only:
        values = (
            "SELECT %s, %s, %s, %s, %s, %s WHERE EXISTS (SELECT 1 FROM workspace_members"
            " WHERE workspace_id = %s AND user_id = %s)"
        )
        args += (workspace_id, user_id)
    row = cur.execute(
        f"INSERT INTO notifications (user_id, type, workspace_id, task_id, actor_id, payload) {values}"
        " RETURNING *",
        args,
    ).fetchone()
    if row is None:
        return None
    return {"user_id": user_id, "notification": Notification.model_validate(row).wire()}


# -- after commit ----------------------------------------------------------------------------
def publish(
    rt: Runtime,
    committed: Committed,
    gateway: ManagementApi,
    *,
    exclude_connection: str | None = None,
    answer: tuple[str, str, str] | None = None,
) -> Receipt | None:
    """Store and fan out a committed event, then push its notifications. Never raises for a peer.

    ``answer`` (user id, request id, ack json) is the idempotency record of the request that made
    the change; it is written together with the history entry.
    """
    receipt = None
    event = committed.event
    if event is None or committed.workspace_id is None:
        if answer is not None:
            rt.store.finish(*answer)
    else:
        wid = str(committed.workspace_id)
        payload = dumps(event)
        conns = rt.store.append_event(wid, int(event["seq"]), payload, answer=answer)
        targets = [cid for cid in conns if cid != exclude_connection]
        from collab.domain import fanout, tracer, usage

        trace = {"seq": event["seq"], "type": event["type"], "timestamp": event["timestamp"]}
        receipt, dispatched = fanout.deliver(rt, gateway, wid, targets, payload.encode(), trace=trace)
        usage.add(rt, wid, posts_out=len(targets))
        # before gone peers are pruned; the chunks handed to fan-out invocations add theirs
        tracer.on_fanout(rt, wid, event, receipt, exclude_connection, dispatched)
        if receipt.gone:
            _prune(rt, gateway, wid, receipt.gone)
        from collab.domain import webhooks  # stdlib-only imports; a no-op without a queue

        webhooks.enqueue(rt, wid, int(event["seq"]))
    if committed.notifications:
        push_notifications(rt, committed.notifications, gateway)
    if committed.notices and committed.workspace_id is not None:
        post_notices(rt, str(committed.workspace_id), committed.notices, gateway)
    return receipt


def post_notices(
    rt: Runtime, workspace_id: str, notices: list[tuple[str, dict[str, Any]]], gateway: ManagementApi
) -> None:
    """Post each notice to its user's connections in the workspace; nothing when they are offline
    (a notice is not stored: the receipt of the change that caused it is the actor's)."""
    messages: list[tuple[str, bytes]] = []
    for uid, body in notices:
        payload = dumps(body).encode()
        for cid, wid in rt.store.user_connections(uid).items():
            if wid == workspace_id:
                messages.append((cid, payload))
    if not messages:
        return
    from collab.domain import usage

    usage.add(rt, workspace_id, posts_out=len(messages))
    outcomes = gateway.send_each(messages)
    gone = [cid for (cid, _), outcome in zip(messages, outcomes, strict=True) if outcome == "gone"]
    if gone:
        _prune(rt, gateway, workspace_id, gone)


def _prune(rt: Runtime, gateway: ManagementApi, wid: str, gone: list[str]) -> None:
    """Connections found gone (410): out of every Redis structure, and a user whose last connection
    that was leaves the workspace's presence (``presence.left`` to the others)."""
    from collab.domain import presence

    presence.settle(rt, gateway, wid, rt.store.remove_connections(wid, gone))


def push_notifications(rt: Runtime, items: list[dict[str, Any]], gateway: ManagementApi) -> list[str]:
    """Post each notification to every live connection of its recipient; mark delivered where a
    post succeeded. Returns the ids marked delivered."""
    messages: list[tuple[str, bytes]] = []
    owner: dict[int, str] = {}
    gone_by_ws: dict[str, list[str]] = {}
    conn_ws: dict[str, str] = {}
    for item in items:
        n = item["notification"]
        conns = rt.store.user_connections(item["user_id"])
        body = dumps(
            frame(
                "notification.created",
                n["workspace_id"],
                n["actor_id"],
                iso(rt.clock.utcnow()),
                {"notification": n},
            )
        ).encode()
        for cid, wid in conns.items():
            owner[len(messages)] = n["id"]
            conn_ws[cid] = wid
            messages.append((cid, body))
    if not messages:
        return []
    outcomes = gateway.send_each(messages)
    delivered = sorted({owner[i] for i, outcome in enumerate(outcomes) if outcome == "delivered"})
    for (cid, _), outcome in zip(messages, outcomes, strict=True):
        if outcome == "gone":
            gone_by_ws.setdefault(conn_ws[cid], []).append(cid)
    for wid, cids in gone_by_ws.items():
        _prune(rt, gateway, wid, cids)
    if delivered:
        rt.db.run(
            lambda cur: cur.execute(
                "UPDATE notifications SET delivered_at = now() WHERE id = ANY(%s) AND delivered_at IS NULL",
                (delivered,),
            )
        )
    return delivered
