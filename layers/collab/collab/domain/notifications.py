"""Notifications: listing, reading, and handing undelivered ones to ``sync`` exactly once.

They are written by the mutation that causes them (see ``tasks`` and ``workspaces``), pushed after
commit by ``events.push_notifications``, and marked delivered only when a post succeeded. Whatever
was not delivered is claimed by the recipient's next ``sync``: the claim is one UPDATE ... RETURNING,
so two concurrent syncs can never both receive the same notification.
"""

from __future__ import annotations

from typing import Any

from collab.adapters.postgres.database import Cursor, Database
from collab.errors import ValidationError
from collab.models import Notification
from collab.protocol.wire import size

MAX_SYNC_NOTIFICATIONS = 200  # per sync reply; the rest come with the next sync


def _wire(row: dict[str, Any]) -> dict[str, Any]:
    return Notification.model_validate(row).wire()


def claim_undelivered(
    cur: Cursor, user_id: str, budget: int | None = None
) -> tuple[list[dict[str, Any]], bool]:
    """Claim the oldest undelivered notifications that fit in ``budget`` bytes of the sync reply
    (at most ``MAX_SYNC_NOTIFICATIONS``), marking only those delivered: a notification counts as
    delivered once it is in a reply that API Gateway can send (128 KB), never when it was cut.
    Returns them and whether more are waiting (the client syncs again for them). Rows are locked
    with SKIP LOCKED, so two concurrent syncs can never both receive the same notification."""
    rows = cur.execute(
        "SELECT *, now() AS claimed_at FROM notifications WHERE user_id = %s AND delivered_at IS NULL"
        " ORDER BY created_at, id LIMIT %s FOR UPDATE SKIP LOCKED",
        (user_id, MAX_SYNC_NOTIFICATIONS + 1),
    ).fetchall()
    out: list[dict[str, Any]] = []
    used = 0
    for row in rows[:MAX_SYNC_NOTIFICATIONS]:
        row["delivered_at"] = row.pop("claimed_at")  # now(): what the UPDATE below writes
        note = _wire(row)
        cost = size(note) + 1  # and its comma
        if budget is not None and used + cost > budget:
            break
        used += cost
        out.append(note)
    if out:
        cur.execute(
            "UPDATE notifications SET delivered_at = now() WHERE id = ANY(%s)", ([n["id"] for n in out],)
        )
    return out, len(out) < len(rows)


def mark_read(db: Database, user_id: str, ids: list[str]) -> list[str]:
    """Mark the user's own notifications read; returns the ids that are now read (others ignored)."""
    if not ids or len(ids) > 100:
        raise ValidationError("ids: between 1 and 100 notification ids", field="ids")

    def tx(cur: Cursor) -> list[str]:
        rows = cur.execute(
            "UPDATE notifications"
            " SET read_at = coalesce(read_at, now()), delivered_at = coalesce(delivered_at, now())"
            " WHERE user_id = %s AND id = ANY(%s) RETURNING id",
            (user_id, [str(i) for i in ids]),
        ).fetchall()
        return sorted(str(r["id"]) for r in rows)

    return db.run(tx)


def list_for(
    db: Database, user_id: str, *, unread_only: bool = False, cursor: str | None = None, limit: int
) -> dict[str, Any]:
    """A page of the user's notifications, newest first. The cursor is the last item's id; the
    route holds the default page size (docs/http-api.md)."""
    if not 1 <= limit <= 200:
        raise ValidationError("limit: must be between 1 and 200", field="limit")

    def tx(cur: Cursor) -> dict[str, Any]:
        where, params = "user_id = %s", [user_id]
        if unread_only:
            where += " AND read_at IS NULL"
        if cursor:
            where += " AND (created_at, id) < (SELECT created_at, id FROM notifications"
            where += " WHERE id = %s AND user_id = %s)"
            params += [cursor, user_id]
        rows = cur.execute(
            f"SELECT * FROM notifications WHERE {where} ORDER BY created_at DESC, id DESC LIMIT %s",
            (*params, limit + 1),
        ).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        return {"items": [_wire(r) for r in rows], "next_cursor": str(rows[-1]["id"]) if more else None}

    import psycopg

    try:
        return db.run(tx)
    except psycopg.DataError:  # not a uuid, or text Postgres cannot hold (NUL)
        raise ValidationError("cursor: invalid", field="cursor") from None
