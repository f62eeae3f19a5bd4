"""Undo and redo of one's own task changes (contract v1.3: ``task.undo`` / ``task.redo``).

A change is named by its ``seq``: the activity row of that seq in the caller's workspace records
what the change did (``changes``: field -> {from, to}; for a creation or a deletion, the task's
existence). Undo puts the fields it set back to their values before it; redo sets them again. Each is
a normal change in one transaction: the task's next version, the workspace's next seq, an event to
peers, an activity row (``kind`` undo/redo, ``target_seq`` the change), notifications.

The rule, for both: only when nothing the change touched moved on since it (or since its last redo
or undo) was applied. Field provenance (``tasks.fields``) says at which version each field last
changed; if any of the change's fields changed after the version that applied it, the request is
refused with ``conflict`` carrying the current task. Undoing a creation deletes the task, undoing a
deletion restores it; either is refused if the task changed since.

Refused, and nothing changed: a seq this workspace never had or no longer has (``not_found``, also
for a change of another workspace), someone else's change (``forbidden``), a change that is not a
task change or is itself an undo or redo (``validation_error``), undoing what is undone or redoing
what is not (``conflict``).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from collab.adapters.postgres.database import Cursor, Database
from collab.domain import tasks
from collab.domain.access import lock_membership
from collab.errors import Conflict, Forbidden, NotFound, ValidationError

# the change a task event stands for, when its row is undone / redone
_UNDONE_TYPE = {"create": "task.deleted", "delete": "task.created"}
_REDONE_TYPE = {"create": "task.created", "delete": "task.deleted"}


def _value(name: str, value: Any) -> Any:
    """A field's value from the activity log's JSON, as the column holds it."""
    return date.fromisoformat(value) if name == "due_date" and value is not None else value


def _change(cur: Cursor, actor_id: str, workspace_id: str, seq: int) -> dict[str, Any]:
    row = cur.execute(
        "SELECT seq, actor_id, task_id, kind, changes, (payload -> 'task' ->> 'version')::bigint AS version"
        " FROM activity WHERE workspace_id = %s AND seq = %s",
        (workspace_id, seq),
    ).fetchone()
    if row is None:
        raise NotFound("no change with this seq in this workspace", field="seq")
    if row["kind"] not in ("create", "update", "delete") or row["task_id"] is None:
        raise ValidationError("seq: not a task change that can be undone or redone", field="seq")
    if row["actor_id"] != actor_id:
        raise Forbidden("only your own changes can be undone or redone")
    return row


def _lock_task(cur: Cursor, actor_id: str, workspace_id: str, task_id: str) -> dict[str, Any]:
    """The task, locked, tombstone or not; the caller still a member (their member row locked)."""
    row = cur.execute(
        f"SELECT {tasks.COLUMNS} FROM tasks WHERE id = %s AND workspace_id = %s FOR UPDATE",
        (task_id, workspace_id),
    ).fetchone()
    if row is None:
        raise NotFound("task not found")
    if not lock_membership(cur, workspace_id, actor_id):
        raise Forbidden("not a member of this workspace")
    return row


def revert(db: Database, actor_id: str, workspace_id: str, seq: int, *, redo: bool) -> tasks.Mutation:
    """``task.undo`` (``redo=False``) or ``task.redo`` of the caller's change at ``seq``."""

    def tx(cur: Cursor) -> tasks.Mutation:
        change = _change(cur, actor_id, workspace_id, seq)
        task = _lock_task(cur, actor_id, workspace_id, str(change["task_id"]))
        last = cur.execute(
            "SELECT kind, (payload -> 'task' ->> 'version')::bigint AS version FROM activity"
            " WHERE workspace_id = %s AND target_seq = %s ORDER BY seq DESC LIMIT 1",
            (workspace_id, seq),
        ).fetchone()
        undone = last is not None and last["kind"] == "undo"
        current = tasks.wire_task(task)
        if redo and not undone:
            raise Conflict("this change is not undone", task=current)
        if not redo and undone:
            raise Conflict("this change is already undone", task=current)
        applied = int(last["version"]) if last is not None else int(change["version"])
        kind = change["kind"]
        if kind == "update":
            fields: dict[str, Any] = change["changes"] or {}  # an update's: writable fields only
            marks = task["fields"] or {}
            moved = task["deleted"] or any(
                int((marks.get(n) or {}).get("version", 1)) != applied for n in fields
            )
            if moved:
                raise Conflict("the task changed since; nothing was undone or redone", task=current)
            patch = {n: _value(n, c["to" if redo else "from"]) for n, c in fields.items()}
            if patch.get("assigned_to") is not None:
                tasks.check_assignee(cur, workspace_id, task["created_by"], patch["assigned_to"])
            row = tasks.write(cur, actor_id, task, patch)
            type_ = "task.updated"
        else:  # create / delete: the task's existence
            gone = (kind == "create") != redo  # after this request, is the task deleted?
            if task["deleted"] == gone or int(task["version"]) != applied:
                raise Conflict("the task changed since; nothing was undone or redone", task=current)
            row = tasks.write(cur, actor_id, task, {}, deleted=gone)
            type_ = (_REDONE_TYPE if redo else _UNDONE_TYPE)[kind]
        changes = tasks.field_changes(task, row)
        if row["deleted"] != task["deleted"]:
            changes["deleted"] = {"from": task["deleted"], "to": row["deleted"]}
        committed, new_seq, wire = tasks.event_and_notes(
            cur,
            actor_id,
            type_,
            row,
            task,
            changes=changes,
            kind="redo" if redo else "undo",
            target_seq=seq,
        )
        return tasks.Mutation(wire, new_seq, committed)

    return db.run(tx)
