"""Task mutations: the one service behind both the WebSocket and the HTTP API.

Each mutation is one Postgres transaction that
  1. checks access (membership of the task's workspace, or ownership of a personal task),
  2. writes the task: a create, a patch of only the fields sent, or a soft delete; ``version + 1``,
  3. takes the workspace's next ``seq`` and writes the activity row (workspace tasks only),
  4. writes the notifications the change causes (never to the actor),
and returns a :class:`Mutation` whose ``committed`` part :func:`collab.domain.events.publish` sends after
the commit. Conflicts are last-write-wins per field in commit order: the task row is locked
``FOR UPDATE`` for the length of the transaction, so concurrent patches apply one after the other and
a field keeps the value of the last commit that wrote it; fields a patch did not send are untouched.

v1.3 (docs/protocol.md, "Additions in v1.3"): the same statement that writes a field marks its
provenance (``tasks.fields``: who, which version, when; only when the value changed), the activity
row records the change field by field (``from``/``to``, the source of history and undo), and an
update that says which version its author saw (``seen_version``) gets a conflict receipt: the fields
it replaced that someone else had changed since, and those people hear of it (``task.overwritten``).
A description edited concurrently is merged (:mod:`collab.domain.textmerge`) against the text at
``seen_version`` instead of replaced.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from collab.adapters.postgres.database import Cursor, Database
from collab.clock import iso
from collab.domain import textmerge
from collab.domain.access import lock_membership, require_member
from collab.domain.events import Committed, notify, record
from collab.errors import CollabError, Conflict, Forbidden, NotFound, ValidationError
from collab.models import TASK_WRITABLE, Task
from collab.protocol.client_frames import TaskDraft
from collab.protocol.wire import frame

COLUMNS = (
    "id, workspace_id, title, description, status, priority, due_date, assigned_to, created_by,"
    " created_at, updated_by, updated_at, version, deleted, fields"
)
_T_COLUMNS = ", ".join(f"t.{c.strip()}" for c in COLUMNS.split(","))


OVERWRITTEN_WINDOW = timedelta(seconds=60)  # a change this recent that is overwritten is told of it
DESCRIPTION_MAX = 10_000  # contract 3.6; a merge that would pass it falls back to last-write-wins

# The provenance of the fields named by the text array parameter, as of this change (one statement
# with the write; ``tasks.version`` is the version before it).
_MARKS = (
    "COALESCE((SELECT jsonb_object_agg(k, jsonb_build_object('by', {actor}::text, 'version',"
    " tasks.version + 1, 'at', now())) FROM unnest({names}) k WHERE k IS NOT NULL), '{{}}'::jsonb)"
)


@dataclass(slots=True)
class Mutation:
    task: dict[str, Any]
    seq: int | None
    committed: Committed
    overwrote: list[dict[str, Any]] | None = None  # v1.3: with seen_version, the conflict receipt
    merged: list[str] = field(default_factory=list)  # v1.3: fields merged with a concurrent change


def wire_task(row: dict[str, Any]) -> dict[str, Any]:
    return Task.model_validate(row).wire()


def json_value(value: Any) -> Any:
    """A field's value as JSON (a due date as ISO text)."""
    return value.isoformat() if isinstance(value, date) else value


def field_changes(before: dict[str, Any], row: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The writable fields whose value differs between two versions of a task: ``{from, to}``."""
    return {
        n: {"from": json_value(before[n]), "to": json_value(row[n])}
        for n in TASK_WRITABLE
        if before[n] != row[n]
    }


def check_assignee(cur: Cursor, workspace_id: str | None, owner: str, assignee: str | None) -> None:
    if assignee is None:
        return
    if workspace_id is None:
        if assignee != owner:
            raise Conflict(
                "assigned_to: a personal task can only be assigned to its owner", field="assigned_to"
            )
        return
    row = cur.execute(
        "SELECT 1 FROM workspace_members WHERE workspace_id = %s AND user_id = %s", (workspace_id, assignee)
    ).fetchone()
    if row is None:
        raise Conflict("assigned_to: not a member of this workspace", field="assigned_to")


def _load_for_write(cur: Cursor, actor_id: str, task_id: str, scope: str | None) -> dict[str, Any]:
    """Lock the task and check the actor may change it, in one statement. Not found, deleted,
    out of scope: 404; in a workspace the actor is not (any more) a member of: 403."""
    row = cur.execute(
        f"SELECT {_T_COLUMNS}, m.role FROM tasks t LEFT JOIN workspace_members m"
        " ON m.workspace_id = t.workspace_id AND m.user_id = %s WHERE t.id = %s FOR UPDATE OF t",
        (actor_id, task_id),
    ).fetchone()
    if row is None or row["deleted"]:
        raise NotFound("task not found")
    wid = row["workspace_id"]
    if scope is not None and (wid is None or str(wid) != scope):
        raise NotFound("task not found")
    if wid is None:
        if row["created_by"] != actor_id:
            raise NotFound("task not found")
    elif row["role"] is None or not lock_membership(cur, str(wid), actor_id):
        raise Forbidden("not a member of this workspace")
    return row


def event_and_notes(
    cur: Cursor,
    actor_id: str,
    type_: str,
    row: dict[str, Any],
    before: dict[str, Any] | None,
    *,
    changes: dict[str, Any] | None = None,
    kind: str | None = None,
    target_seq: int | None = None,
) -> tuple[Committed, int | None, dict[str, Any]]:
    """The event of a committed task change (seq, activity row with its field changes) and the
    notifications it causes."""
    task = wire_task(row)
    wid = str(row["workspace_id"]) if row["workspace_id"] is not None else None
    committed = Committed(wid)
    seq = None
    if wid is None:
        return committed, seq, task
    committed.event = record(
        cur,
        wid,
        actor_id,
        type_,
        {"task": task},
        task_id=str(row["id"]),
        changes=changes,
        kind=kind,
        target_seq=target_seq,
    )
    seq = int(committed.event["seq"])
    tid = str(row["id"])
    summary = {"title": row["title"], "seq": seq}
    old_assignee = before["assigned_to"] if before else None
    new_assignee = row["assigned_to"]
    notes: list[dict[str, Any] | None] = []
    if type_ == "task.deleted":
        notes.append(
            notify(
                cur,
                old_assignee,
                "task.deleted",
                actor_id=actor_id,
                workspace_id=wid,
                task_id=tid,
                payload=summary,
                members_only=True,
            )
        )
    elif old_assignee != new_assignee:
        if new_assignee:
            notes.append(
                notify(
                    cur,
                    new_assignee,
                    "task.assigned",
                    actor_id=actor_id,
                    workspace_id=wid,
                    task_id=tid,
                    payload=summary,
                    members_only=True,
                )
            )
        if old_assignee:
            notes.append(
                notify(
                    cur,
                    old_assignee,
                    "task.unassigned",
                    actor_id=actor_id,
                    workspace_id=wid,
                    task_id=tid,
                    payload=summary,
                    members_only=True,
                )
            )
    elif before is not None and new_assignee:
        changed = sorted(
            k for k in ("title", "description", "status", "priority", "due_date") if before[k] != row[k]
        )
        if changed:
            notes.append(
                notify(
                    cur,
                    new_assignee,
                    "task.changed",
                    actor_id=actor_id,
                    workspace_id=wid,
                    task_id=tid,
                    payload={**summary, "fields": changed},
                    members_only=True,
                )
            )
    committed.notifications = [n for n in notes if n is not None]
    return committed, seq, task


def create(db: Database, actor_id: str, draft: TaskDraft, *, workspace_id: str | None) -> Mutation:
    """Create a task in a workspace (members) or a personal task (``workspace_id=None``)."""
    task_id = str(draft.id or uuid.uuid4())

    def tx(cur: Cursor) -> Mutation:
        if workspace_id is not None:
            require_member(cur, workspace_id, actor_id, lock=True)
        check_assignee(cur, workspace_id, actor_id, draft.assigned_to)
        row = cur.execute(
            "INSERT INTO tasks (id, workspace_id, title, description, status, priority, due_date,"
            " assigned_to, created_by, updated_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            f" ON CONFLICT (id) DO NOTHING RETURNING {COLUMNS}",
            (
                task_id,
                workspace_id,
                draft.title,
                draft.description,
                draft.status,
                draft.priority,
                draft.due_date,
                draft.assigned_to,
                actor_id,
                actor_id,
            ),
        ).fetchone()
        if row is None:
            raise Conflict("a task with this id already exists")
        changes = {n: {"from": None, "to": json_value(row[n])} for n in TASK_WRITABLE}
        committed, seq, task = event_and_notes(
            cur, actor_id, "task.created", row, None, changes=changes, kind="create"
        )
        return Mutation(task, seq, committed)

    return db.run(tx)


# What a patch's notifications, changes and receipt compare, read as the row was before the patch.
_BEFORE = (
    "workspace_id", "title", "description", "status", "priority", "due_date", "assigned_to", "created_by",
    "version", "fields",
)  # fmt: skip


def _patch_locked(
    cur: Cursor,
    actor_id: str,
    task_id: str,
    patch: dict[str, Any],
    base_version: int | None,
    scope: str | None,
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The whole update in one statement: lock the row, check every rule, apply the patch and mark
    the provenance of the fields it changed, and return (the updated row, the fields before it) - or
    None when a rule refuses (or the row is gone), and :func:`_load_for_write` and friends say which.
    One round trip instead of two.

    The subquery locks the row first (``FOR UPDATE``), so a concurrent patch is waited for and the
    checks and the ``before`` values see the version this patch follows, as in the two-step path."""
    checks = [
        "o.id = %(task)s",
        "NOT o.deleted",
        # the member row is locked (KEY SHARE) until commit: a removal waits for this edit, and an
        # edit that comes after the removal finds no row (domain/members.remove_member)
        "CASE WHEN o.workspace_id IS NULL THEN o.created_by = %(actor)s ELSE EXISTS (SELECT 1"
        " FROM workspace_members m WHERE m.workspace_id = o.workspace_id AND m.user_id = %(actor)s"
        " FOR KEY SHARE) END",
    ]
    if scope is not None:
        checks.append("o.workspace_id = %(scope)s")
    if base_version is not None:
        checks.append("o.version = %(base)s")
    if patch.get("assigned_to") is not None:
        checks.append(
            "CASE WHEN o.workspace_id IS NULL THEN o.created_by = %(assignee)s ELSE EXISTS (SELECT 1"
            " FROM workspace_members a WHERE a.workspace_id = o.workspace_id"
            " AND a.user_id = %(assignee)s) END"
        )
    names = sorted(patch)
    params: dict[str, Any] = {f"v_{n}": patch[n] for n in names}
    params.update(
        task=task_id, actor=actor_id, scope=scope, base=base_version, assignee=patch.get("assigned_to")
    )
    sets = ", ".join(f"{n} = %(v_{n})s" for n in names)
    changed = ", ".join(f"CASE WHEN old.{n} IS DISTINCT FROM %(v_{n})s THEN '{n}' END" for n in names)
    marks = _MARKS.format(actor="%(actor)s", names=f"ARRAY[{changed}]::text[]")
    before_cols = ", ".join(f"o.{c}" for c in _BEFORE)
    before_out = ", ".join(f"old.{c} AS before_{c}" for c in _BEFORE)
    row = cur.execute(
        f"UPDATE tasks SET {sets}, version = tasks.version + 1, updated_by = %(actor)s, updated_at = now(),"
        f" fields = tasks.fields || {marks}"
        f" FROM (SELECT o.id, {before_cols} FROM tasks o"
        f" WHERE {' AND '.join(checks)} FOR UPDATE OF o) old"
        f" WHERE tasks.id = old.id RETURNING {', '.join(f'tasks.{c.strip()}' for c in COLUMNS.split(','))},"
        f" {before_out}",
        params,
    ).fetchone()
    if row is None:
        return None
    before = {c: row.pop(f"before_{c}") for c in _BEFORE}
    return row, before


def write(
    cur: Cursor, actor_id: str, before: dict[str, Any], patch: dict[str, Any], *, deleted: bool | None = None
) -> dict[str, Any]:
    """Write a patch (and, for undo and redo, the deleted flag) to a row locked and checked by the
    caller, marking the provenance of the fields whose value changed. Returns the new row."""
    names = sorted(patch)
    sets = [f"{n} = %s" for n in names]
    args: list[Any] = [patch[n] for n in names]
    if deleted is not None:
        sets.append("deleted = %s")
        args.append(deleted)
    changed = [n for n in names if before[n] != patch[n]]
    row = cur.execute(
        f"UPDATE tasks SET {''.join(s + ', ' for s in sets)}version = version + 1, updated_by = %s,"
        f" updated_at = now(), fields = fields || {_MARKS.format(actor='%s', names='%s::text[]')}"
        f" WHERE id = %s RETURNING {COLUMNS}",
        (*args, actor_id, actor_id, changed, before["id"]),
    ).fetchone()
    assert row is not None
    return row


def _text_at(cur: Cursor, workspace_id: str, task_id: str, version: int) -> str | None:
    """A task's description as it was at ``version`` (the activity log holds the task after each of
    its changes), or None when the log does not hold that version (pruned by age, or never one)."""
    row = cur.execute(
        "SELECT payload -> 'task' ->> 'description' AS d, (payload -> 'task' ->> 'version')::bigint AS v"
        " FROM activity WHERE workspace_id = %s AND task_id = %s"
        " AND (payload -> 'task' ->> 'version')::bigint <= %s ORDER BY seq DESC LIMIT 1",
        (workspace_id, task_id, version),
    ).fetchone()
    return row["d"] if row is not None and row["v"] == version else None


def _merge_description(
    cur: Cursor, before: dict[str, Any], patch: dict[str, Any], seen_version: int
) -> tuple[dict[str, Any], textmerge.Merged | None]:
    """With a concurrent description change since ``seen_version``, the patch's description merged
    with it (three-way, against the text at ``seen_version``); unchanged when there was none, when
    the base text is gone, or when the merge would pass the length limit (then: last write wins)."""
    mark = (before["fields"] or {}).get("description")
    if before["workspace_id"] is None or mark is None or int(mark["version"]) <= seen_version:
        return patch, None
    base = _text_at(cur, str(before["workspace_id"]), str(before["id"]), seen_version)
    if base is None:
        return patch, None
    merged = textmerge.merge(base, before["description"], patch["description"])
    if len(merged.text) > DESCRIPTION_MAX:
        return patch, None
    return {**patch, "description": merged.text}, merged


def _receipt(
    cur: Cursor,
    actor_id: str,
    before: dict[str, Any],
    row: dict[str, Any],
    seen_version: int,
    merged: textmerge.Merged | None,
) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]], str]:
    """The conflict receipt of a change: each field it changed that someone else had changed after
    ``seen_version`` (a description merged without conflict is not one), with who, when and the value
    replaced; and, per user, their changes overwritten within ``OVERWRITTEN_WINDOW`` of this one.
    Returns (receipt, {user id: their fields}, the actor's display name)."""
    marks = before["fields"] or {}
    hits: list[tuple[str, dict[str, Any]]] = []
    for name in TASK_WRITABLE:
        mark = marks.get(name)
        if before[name] == row[name] or mark is None:
            continue
        if int(mark["version"]) <= seen_version or mark["by"] == actor_id:
            continue
        if name == "description" and merged is not None and merged.conflicts == 0:
            continue
        hits.append((name, mark))
    if not hits:
        return [], {}, actor_id
    ids = sorted({m["by"] for _, m in hits} | {actor_id})
    names = {
        r["id"]: r["display_name"] or r["id"]
        for r in cur.execute("SELECT id, display_name FROM users WHERE id = ANY(%s)", (ids,)).fetchall()
    }
    receipt: list[dict[str, Any]] = []
    told: dict[str, list[dict[str, Any]]] = {}
    for name, mark in hits:
        at = datetime.fromisoformat(mark["at"])
        item: dict[str, Any] = {
            "field": name,
            "value": json_value(before[name]),
            "by": {"id": mark["by"], "display_name": names.get(mark["by"], mark["by"])},
            "version": int(mark["version"]),
            "at": iso(at),
        }
        if name == "description" and merged is not None:
            item["hunks"] = merged.conflicts
        receipt.append(item)
        if row["updated_at"] - at <= OVERWRITTEN_WINDOW:
            told.setdefault(mark["by"], []).append({k: v for k, v in item.items() if k != "by"})
    return receipt, told, names.get(actor_id, actor_id)


def _notices(
    committed: Committed,
    actor_id: str,
    actor_name: str,
    task: dict[str, Any],
    seq: int | None,
    told: dict[str, list[dict[str, Any]]],
) -> None:
    """``task.overwritten`` to each user whose recent change this one replaced (sent after the commit
    to their connections in the workspace, if any: :func:`collab.domain.events.publish`)."""
    if committed.workspace_id is None or committed.event is None:
        return
    at = committed.event["timestamp"]  # the protocol's form of the commit's time
    for uid, fields in sorted(told.items()):
        data = {
            "task": task,
            "seq": seq,
            "by": {"id": actor_id, "display_name": actor_name},
            "fields": fields,
        }
        committed.notices.append((uid, frame("task.overwritten", committed.workspace_id, actor_id, at, data)))


def update(
    db: Database,
    actor_id: str,
    task_id: str,
    patch: dict[str, Any],
    *,
    base_version: int | None = None,
    seen_version: int | None = None,
    scope: str | None = None,
) -> Mutation:
    """Apply a patch of writable fields. With ``base_version``, refuse (conflict, with the current task)
    when the task has moved on since; without it, last write wins per field. With ``seen_version``
    (v1.3), the answer carries the conflict receipt and a concurrent description is merged."""
    if not patch:
        raise ValidationError("changes: at least one field is required", field="changes")

    def tx(cur: Cursor) -> Mutation:
        merged: textmerge.Merged | None = None
        done = None
        merging = "description" in patch and seen_version is not None and base_version is None
        if not merging:
            done = _patch_locked(cur, actor_id, task_id, patch, base_version, scope)
        if done is not None:
            row, before = done
        else:  # refused, changed under us, or a description to merge: step by step
            before = _load_for_write(cur, actor_id, task_id, scope)
            if base_version is not None and base_version != before["version"]:
                raise Conflict("the task changed since base_version", task=wire_task(before))
            if "assigned_to" in patch:
                wid = str(before["workspace_id"]) if before["workspace_id"] is not None else None
                check_assignee(cur, wid, before["created_by"], patch["assigned_to"])
            written = patch
            if merging:
                assert seen_version is not None
                written, merged = _merge_description(cur, before, patch, seen_version)
            row = write(cur, actor_id, before, written)
        committed, seq, task = event_and_notes(
            cur, actor_id, "task.updated", row, before, changes=field_changes(before, row), kind="update"
        )
        mutation = Mutation(task, seq, committed)
        if merged is not None:
            mutation.merged = ["description"]
        if seen_version is not None:
            receipt, told, actor_name = _receipt(cur, actor_id, before, row, seen_version, merged)
            mutation.overwrote = receipt
            _notices(committed, actor_id, actor_name, task, seq, told)
        return mutation

    return db.run(tx)


def delete(db: Database, actor_id: str, task_id: str, *, scope: str | None = None) -> Mutation:
    """Soft delete: the row stays as a tombstone with the final version."""

    def tx(cur: Cursor) -> Mutation:
        before = _load_for_write(cur, actor_id, task_id, scope)
        row = cur.execute(
            f"UPDATE tasks SET deleted = true, version = version + 1, updated_by = %s, updated_at = now()"
            f" WHERE id = %s RETURNING {COLUMNS}",
            (actor_id, task_id),
        ).fetchone()
        assert row is not None
        committed, seq, task = event_and_notes(
            cur,
            actor_id,
            "task.deleted",
            row,
            before,
            changes={"deleted": {"from": False, "to": True}},
            kind="delete",
        )
        return Mutation(task, seq, committed)

    return db.run(tx)


# -- reads -----------------------------------------------------------------------------------
def get(db: Database, actor_id: str, task_id: str) -> dict[str, Any]:
    def tx(cur: Cursor) -> dict[str, Any]:
        row = cur.execute(f"SELECT {COLUMNS} FROM tasks WHERE id = %s", (task_id,)).fetchone()
        if row is None or row["deleted"]:
            raise NotFound("task not found")
        if row["workspace_id"] is None:
            if row["created_by"] != actor_id:
                raise NotFound("task not found")
        else:
            require_member(cur, str(row["workspace_id"]), actor_id)
        return wire_task(row)

    return db.run(tx)


def encode_cursor(created_at: datetime, task_id: Any) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{task_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str] | None:
    """The position a cursor names, or None when it names none (not one the server wrote): such a
    cursor is past the end of every list, so its page is empty (the document's cursor is any
    base64url string; a cursor is never refused)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ts, _, tid = raw.partition("|")
        return datetime.fromisoformat(ts), str(uuid.UUID(tid))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None


def _page(cur: Cursor, where: str, args: tuple[Any, ...], cursor: str | None, limit: int) -> dict[str, Any]:
    if not 1 <= limit <= 200:
        raise ValidationError("limit: must be between 1 and 200", field="limit")
    params: list[Any] = list(args)
    if cursor:
        position = decode_cursor(cursor)
        if position is None:
            return {"items": [], "next_cursor": None}
        where += " AND (created_at, id) > (%s, %s)"
        params += list(position)
    rows = cur.execute(
        f"SELECT {COLUMNS} FROM tasks WHERE {where} AND NOT deleted ORDER BY created_at, id LIMIT %s",
        (*params, limit + 1),
    ).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None
    return {"items": [wire_task(r) for r in rows], "next_cursor": nxt}


def list_workspace(
    db: Database, actor_id: str, workspace_id: str, *, cursor: str | None, limit: int
) -> dict[str, Any]:
    """A page of a workspace's live tasks in creation order (stable under concurrent inserts)."""

    def tx(cur: Cursor) -> dict[str, Any]:
        require_member(cur, workspace_id, actor_id)
        return _page(cur, "workspace_id = %s", (workspace_id,), cursor, limit)

    return db.run(tx)


def list_personal(db: Database, actor_id: str, *, cursor: str | None, limit: int) -> dict[str, Any]:
    return db.run(
        lambda cur: _page(cur, "workspace_id IS NULL AND created_by = %s", (actor_id,), cursor, limit)
    )


__all__ = ["CollabError", "Mutation", "create", "delete", "get", "list_personal", "list_workspace", "update"]
