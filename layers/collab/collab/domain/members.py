"""Memberships: list, add, change a role, remove (or leave).

Every mutation is one Postgres transaction that locks the workspace row first (``FOR UPDATE``,
:func:`collab.domain.workspaces.lock`). That one lock serialises every change to a workspace's
members, which is what keeps "the last owner stays" true when two owners demote each other at the
same moment, and orders their events by commit like task events. Each writes the activity row
(:func:`collab.domain.events.record`) and the affected user's notification, and returns a
:class:`~collab.domain.workspaces.Change` for :func:`~collab.domain.workspaces.settle`.

Who may do what (contract section 4; ``owner`` > ``admin`` > ``member``): any member lists the
members and may leave; ``admin`` and ``owner`` add, re-role and remove members, but only an owner
touches admins and owners, and nobody grants a role above their own; the last owner can neither
leave nor be demoted.

Removing a member closes their connections to the workspace *before* the ``member.removed`` event
is published, so they receive nothing from it afterwards; a ticket they still hold stops working
because ``$connect`` re-checks membership in Postgres.
"""

from __future__ import annotations

from typing import Any

from collab.adapters.postgres.database import Cursor, Database
from collab.domain import events, revocation
from collab.domain.access import RANK, require_member, role_of
from collab.domain.events import Committed
from collab.domain.workspaces import Change, lock
from collab.errors import Conflict, Forbidden, NotFound, ValidationError
from collab.models import Member

_MEMBER = (
    "SELECT m.user_id, u.email, coalesce(nullif(u.display_name, ''), u.email, u.id) AS display_name,"
    " m.role, m.joined_at FROM workspace_members m JOIN users u ON u.id = m.user_id"
)


def _member(cur: Cursor, workspace_id: str, user_id: str) -> dict[str, Any]:
    row = cur.execute(
        f"{_MEMBER} WHERE m.workspace_id = %s AND m.user_id = %s", (workspace_id, user_id)
    ).fetchone()
    if row is None:
        raise NotFound("member not found")
    return Member.model_validate(row).wire()


def _may_grant(actor_role: str, role: str) -> None:
    if RANK[role] > RANK[actor_role]:
        raise Forbidden(f"only an owner can grant the {role} role")


def _may_touch(actor_role: str, target_role: str) -> None:
    if actor_role != "owner" and target_role != "member":
        raise Forbidden("only an owner can change or remove an admin or an owner")


def _keep_an_owner(cur: Cursor, workspace_id: str) -> None:
    row = cur.execute(
        "SELECT count(*) AS n FROM workspace_members WHERE workspace_id = %s AND role = 'owner'",
        (workspace_id,),
    ).fetchone()
    if row is None or int(row["n"]) <= 1:
        raise Conflict("the last owner cannot leave or be demoted; make another member owner first")


def list_members(db: Database, actor_id: str, workspace_id: str) -> dict[str, Any]:
    """Every member (at most ``members_per_workspace``, 1,000 at most: one page of ~150 KB), in the
    order they joined."""

    def tx(cur: Cursor) -> dict[str, Any]:
        require_member(cur, workspace_id, actor_id)
        rows = cur.execute(
            f"{_MEMBER} WHERE m.workspace_id = %s ORDER BY m.joined_at, m.user_id", (workspace_id,)
        ).fetchall()
        return {"items": [Member.model_validate(r).wire() for r in rows], "next_cursor": None}

    return db.run(tx)


def add_member(
    db: Database,
    actor_id: str,
    workspace_id: str,
    *,
    user_id: str | None = None,
    email: str | None = None,
    role: str = "member",
    cap: int = 50,
) -> Change:
    """Add an existing user (by id or email). 404 for an unknown user, 409 when already a member or
    when the workspace has ``cap`` members (``Limits.members_per_workspace``). The count is read
    under the workspace row's lock, which every membership change takes first, so two concurrent
    adds cannot both pass it; the ``member_count`` CHECK is the ceiling no setting passes (1,000)."""
    if (user_id is None) == (email is None):
        raise ValidationError("exactly one of user_id and email is required", field="user_id")

    def tx(cur: Cursor) -> Change:
        name = lock(cur, workspace_id)
        actor_role = require_member(cur, workspace_id, actor_id, at_least="admin")
        _may_grant(actor_role, role)
        full = cur.execute(
            "SELECT member_count >= %s AS full FROM workspaces WHERE id = %s", (cap, workspace_id)
        ).fetchone()
        if full is not None and full["full"]:
            raise Conflict(f"a workspace has at most {cap} members")
        if user_id is not None:
            row = cur.execute("SELECT id FROM users WHERE id = %s", (user_id,)).fetchone()
        else:
            row = cur.execute("SELECT id FROM users WHERE lower(email) = lower(%s)", (email,)).fetchone()
        if row is None:
            raise NotFound("user not found (users exist once they have signed in)")
        target = str(row["id"])
        inserted = cur.execute(
            "INSERT INTO workspace_members (workspace_id, user_id, role) VALUES (%s, %s, %s)"
            " ON CONFLICT DO NOTHING RETURNING user_id",
            (workspace_id, target, role),
        ).fetchone()
        if inserted is None:
            raise Conflict("already a member of this workspace")
        member = _member(cur, workspace_id, target)
        committed = Committed(workspace_id)
        committed.event = events.record(cur, workspace_id, actor_id, "member.added", {"member": member})
        note = events.notify(
            cur,
            target,
            "member.added",
            actor_id=actor_id,
            workspace_id=workspace_id,
            payload={"workspace_name": name, "role": role, "seq": committed.event["seq"]},
        )
        committed.notifications = [note] if note else []
        return Change(member, committed)

    return db.run(tx)


def change_role(db: Database, actor_id: str, workspace_id: str, user_id: str, role: str) -> Change:
    """Give a member another role. Setting the role they already have changes nothing (no event)."""

    def tx(cur: Cursor) -> Change:
        name = lock(cur, workspace_id)
        actor_role = require_member(cur, workspace_id, actor_id, at_least="admin")
        before = role_of(cur, workspace_id, user_id)
        if before is None:
            raise NotFound("member not found")
        _may_touch(actor_role, before)
        _may_grant(actor_role, role)
        if before == role:
            return Change(_member(cur, workspace_id, user_id), Committed(workspace_id))
        if before == "owner":
            _keep_an_owner(cur, workspace_id)
        cur.execute(
            "UPDATE workspace_members SET role = %s WHERE workspace_id = %s AND user_id = %s",
            (role, workspace_id, user_id),
        )
        member = _member(cur, workspace_id, user_id)
        committed = Committed(workspace_id)
        committed.event = events.record(
            cur, workspace_id, actor_id, "member.role_changed", {"member": member}
        )
        note = events.notify(
            cur,
            user_id,
            "member.role_changed",
            actor_id=actor_id,
            workspace_id=workspace_id,
            payload={
                "workspace_name": name,
                "role": role,
                "previous_role": before,
                "seq": committed.event["seq"],
            },
        )
        committed.notifications = [note] if note else []
        return Change(member, committed)

    return db.run(tx)


def remove_member(db: Database, actor_id: str, workspace_id: str, user_id: str) -> Change:
    """Remove a member (admin+), or leave (any member removing themselves).

    The member row is locked first, before the workspace row: edits hold it (``FOR KEY SHARE``,
    :func:`collab.domain.access.role_of`) until they commit, so an edit in flight commits before
    ``member.removed`` and one that comes later is refused. Both take the member row, then the
    workspace row (the seq), so the two never wait for each other in a cycle."""

    def tx(cur: Cursor) -> Change:
        cur.execute(
            "SELECT 1 FROM workspace_members WHERE workspace_id = %s AND user_id = %s FOR UPDATE",
            (workspace_id, user_id),
        )
        name = lock(cur, workspace_id)
        if user_id == actor_id:
            target_role = require_member(cur, workspace_id, actor_id)
        else:
            actor_role = require_member(cur, workspace_id, actor_id, at_least="admin")
            found = role_of(cur, workspace_id, user_id)
            if found is None:
                raise NotFound("member not found")
            target_role = found
            _may_touch(actor_role, target_role)
        if target_role == "owner":
            _keep_an_owner(cur, workspace_id)
        member = _member(cur, workspace_id, user_id)
        cur.execute(
            "DELETE FROM workspace_members WHERE workspace_id = %s AND user_id = %s", (workspace_id, user_id)
        )
        revocation.record(cur, workspace_id, user_id)
        committed = Committed(workspace_id)
        committed.event = events.record(cur, workspace_id, actor_id, "member.removed", {"member": member})
        note = events.notify(
            cur,
            user_id,
            "member.removed",
            actor_id=actor_id,
            workspace_id=workspace_id,
            payload={"workspace_name": name, "seq": committed.event["seq"]},
        )
        committed.notifications = [note] if note else []
        return Change(None, committed, evict=[user_id])

    return db.run(tx)
