"""A task's history (contract v1.3, ``GET /tasks/{task_id}/history``): its changes, newest first,
from the activity log, each with who made it, when, what kind of change it was and the fields it
changed (``{field: {from, to}}``). Members of the task's workspace read it; a deleted task is gone
(404), its history with it, as ``GET /tasks/{id}`` is. A personal task has no activity log: its
history is empty.

Changes recorded before v1.3 have no field diffs (``changes`` is empty, ``kind`` null). Rows pruned
by age (``Limits.retention_days``) are gone from the history as from ``sync``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from collab.adapters.postgres.database import Cursor, Database
from collab.clock import iso
from collab.domain.access import require_member
from collab.errors import NotFound, ValidationError


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"h{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int | None:
    """The seq a cursor names, or None when it names none (not one the server wrote): its page is
    empty, as every list's is past its end."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    if not raw.startswith("h") or not raw[1:].isdigit() or len(raw) > 20:
        return None
    return int(raw[1:])


def _entry(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "seq": int(row["seq"]),
        "actor": {"id": row["actor_id"], "display_name": row["display_name"] or row["actor_id"]},
        "at": iso(row["created_at"]),
        "type": row["type"],
        "kind": row["kind"],
        "target_seq": row["target_seq"],
        "changes": row["changes"] or {},
    }


def history(
    db: Database, actor_id: str, task_id: str, *, cursor: str | None = None, limit: int
) -> dict[str, Any]:
    """A page of the task's history, newest first (the route holds the default page size)."""
    if not 1 <= limit <= 200:
        raise ValidationError("limit: must be between 1 and 200", field="limit")

    def tx(cur: Cursor) -> dict[str, Any]:
        task = cur.execute(
            "SELECT workspace_id, created_by, deleted FROM tasks WHERE id = %s", (task_id,)
        ).fetchone()
        if task is None or task["deleted"]:
            raise NotFound("task not found")
        if task["workspace_id"] is None:
            if task["created_by"] != actor_id:
                raise NotFound("task not found")
            return {"items": [], "next_cursor": None}
        wid = str(task["workspace_id"])
        require_member(cur, wid, actor_id)
        where = "a.workspace_id = %s AND a.task_id = %s"
        params: list[Any] = [wid, task_id]
        if cursor:
            before = decode_cursor(cursor)
            if before is None:
                return {"items": [], "next_cursor": None}
            where += " AND a.seq < %s"
            params.append(before)
        rows = cur.execute(
            "SELECT a.seq, a.actor_id, u.display_name, a.created_at, a.type, a.kind, a.target_seq, a.changes"
            f" FROM activity a LEFT JOIN users u ON u.id = a.actor_id WHERE {where}"
            " ORDER BY a.seq DESC LIMIT %s",
            (*params, limit + 1),
        ).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        return {
            "items": [_entry(r) for r in rows],
            "next_cursor": encode_cursor(int(rows[-1]["seq"])) if more else None,
        }

    return db.run(tx)
