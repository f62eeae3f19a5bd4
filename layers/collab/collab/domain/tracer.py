"""The delivery tracer: "why didn't Carol see my change?", answered per event and per connection.

For each of a workspace's last 100 events (:data:`collab.adapters.redis.trace.KEEP`), the outcome
for every connection registered at the time of its fan-out:

- ``delivered``: API Gateway accepted the post (2xx);
- ``gone``: 410, the connection was dead (it is pruned, and its user may leave presence);
- ``throttled``: still 429 after the retries; ``failed``: any other error;
- ``sender``: the actor's own connection, which got the ``ack`` instead;
- ``dispatched``: handed to a fan-out invocation (a workspace of more than 100 live connections),
  which replaces it with the post's outcome; one left ``dispatched`` means that invocation never ran;
- ``not_synced``: connected but not yet a fan-out target (no ``sync`` yet); it gets the event from
  its first ``sync``;
- ``removed``: (no connection) a member removed at or before that seq; their connections were
  closed and they receive nothing from the workspace any more.

Plus each connection's last acknowledged ``seq`` when the client reports it (``heartbeat`` may carry
``seq``). Reading is for the workspace's owners and admins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from collab.adapters.redis import trace
from collab.domain.access import require_member
from collab.errors import NotFound
from collab.observability import logger

if TYPE_CHECKING:
    from collab.adapters.apigw.management import Receipt
    from collab.adapters.postgres.database import Cursor
    from collab.runtime import Runtime


def on_fanout(
    rt: Runtime,
    wid: str,
    event: dict[str, Any],
    receipt: Receipt,
    sender: str | None,
    dispatched: list[str] | None = None,
) -> None:
    """Called by ``events.publish`` right after the fan-out (before gone peers are pruned). Best
    effort: a tracer failure never touches the mutation or the fan-out. Connections handed to a
    fan-out invocation (:mod:`collab.domain.fanout`) are ``dispatched`` until it adds their outcome."""
    from collab.domain.fanout import outcomes as outcomes_of

    outcomes = dict.fromkeys(dispatched or (), "dispatched")
    outcomes.update(outcomes_of(receipt))
    removed = None
    if event.get("type") == "member.removed":
        removed = str(((event.get("data") or {}).get("member") or {}).get("user_id") or "") or None
    try:
        trace.record(
            rt.store.r,
            wid,
            int(event["seq"]),
            str(event["type"]),
            str(event["timestamp"]),
            outcomes,
            sender=sender,
            removed_user=removed,
        )
    except Exception:  # noqa: BLE001 - tracing is an aid; the event stands and was fanned out
        logger.warning("tracing a fan-out failed", extra={"workspace_id": wid, "seq": event.get("seq")})


def require_admin(rt: Runtime, actor_id: str, workspace_id: str) -> None:
    def tx(cur: Cursor) -> None:
        require_member(cur, workspace_id, actor_id, at_least="admin")

    rt.db.run(tx)


def deliveries(rt: Runtime, actor_id: str, workspace_id: str, seq: int | None = None) -> dict[str, Any]:
    """The traced events (newest first), or the one with ``seq``, each with its per-connection outcomes."""
    require_admin(rt, actor_id, workspace_id)
    records, removed = trace.traces(rt.store.r, workspace_id, seq)
    if seq is not None and not records:
        raise NotFound(f"seq {seq} is not traced: only the workspace's last {trace.KEEP} events are")
    items = []
    for rec in records:
        conns = [{"connection_id": c, "user_id": u or None, "outcome": o} for c, u, o in rec["connections"]]
        present = {c["user_id"] for c in conns}
        for uid, at in sorted(removed.items()):
            if at <= rec["seq"] and uid not in present:
                conns.append(
                    {"connection_id": None, "user_id": uid, "outcome": "removed", "removed_at_seq": at}
                )
        counts: dict[str, int] = {}
        for c in conns:
            counts[c["outcome"]] = counts.get(c["outcome"], 0) + 1
        items.append(
            {"seq": rec["seq"], "type": rec["type"], "timestamp": rec["timestamp"], "counts": counts,
             "connections": conns}
        )  # fmt: skip
    return {"items": items, "next_cursor": None}


def connections(rt: Runtime, actor_id: str, workspace_id: str) -> dict[str, Any]:
    require_admin(rt, actor_id, workspace_id)
    return {"items": trace.connections(rt.store.r, workspace_id), "next_cursor": None}
