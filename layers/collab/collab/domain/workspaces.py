"""Users, workspaces and memberships: the domain behind the HTTP API's workspace routes.

Like :mod:`collab.domain.tasks`, every mutation is one Postgres transaction that checks the caller's
role, writes the change, takes the workspace's next ``seq`` and writes the activity row
(:func:`collab.domain.events.record`) and the affected user's notification
(:func:`collab.domain.events.notify`, never to the actor). It returns a :class:`Change`;
:func:`settle` does the after-commit part.

Membership mutations lock the workspace row first (``FOR UPDATE``). That one lock serialises every
change to a workspace's members, which is what keeps "the last owner stays" true when two owners
demote each other at the same moment, and orders their events by commit like task events.

Who may do what (contract section 4; ``owner`` > ``admin`` > ``member``):

- any member reads the workspace, its members, tasks, activity and presence, and may leave it;
- ``admin`` and ``owner`` rename the workspace and add, re-role and remove members, but only an
  owner touches admins and owners, and nobody grants a role above their own;
- only an ``owner`` deletes the workspace; the last owner can neither leave nor be demoted.

Removing a member closes their connections to the workspace *before* the ``member.removed`` event
is published (:func:`settle`), so they receive nothing from it afterwards; a ticket they still hold
stops working because ``$connect`` re-checks membership in Postgres.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psycopg

from collab.adapters.postgres.database import Cursor, Database
from collab.auth import tokens
from collab.clock import iso
from collab.domain import events, presence
from collab.domain.access import RANK, require_member, role_of
from collab.domain.events import Committed
from collab.domain.tasks import decode_cursor, encode_cursor
from collab.errors import ConfigError, Conflict, Forbidden, NotFound, ValidationError
from collab.models import Member, Workspace

if TYPE_CHECKING:
    from collab.adapters.apigw.management import ManagementApi
    from collab.config import Settings
    from collab.runtime import Runtime

MAX_PAGE = 200  # the largest page any list route returns; bounds a response to well under 6 MB
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1

_WORKSPACE = (
    "SELECT w.id, w.name, m.role, w.created_by, w.created_at, w.updated_at, w.member_count, w.last_seq"
    " FROM workspaces w JOIN workspace_members m ON m.workspace_id = w.id AND m.user_id = %s"
)
_MEMBER = (
    "SELECT m.user_id, u.email, coalesce(nullif(u.display_name, ''), u.email, u.id) AS display_name,"
    " m.role, m.joined_at FROM workspace_members m JOIN users u ON u.id = m.user_id"
)


@dataclass(slots=True)
class Change:
    """A committed change: what to answer, what to publish, and whose connections to close first."""

    result: dict[str, Any] | None
    committed: Committed
    evict: list[str] = field(default_factory=list)  # user ids to disconnect before publishing
    dropped: bool = False  # the workspace is gone: close every connection, drop its Redis state


def _limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError(f"limit: must be between 1 and {MAX_PAGE}", field="limit")


# -- users -----------------------------------------------------------------------------------
def display_name_of(identity: tokens.Identity) -> str:
    """What peers see: the token's name, else its email, else the user id (control chars dropped)."""
    raw = identity.name or identity.email or identity.user_id
    return _CONTROL.sub("", raw).strip()[:100] or identity.user_id[:100]


def upsert_user(db: Database, identity: tokens.Identity) -> None:
    """Create the caller's user row on first sight, refresh email and name when the token's differ.

    A claim the token lacks keeps the stored value. An email belongs to one user: when the identity
    provider hands an email to another ``sub``, the latest token wins and the old row loses it (the
    unique index on ``lower(email)`` would otherwise refuse every request of the new holder).
    """
    email = identity.email.strip()[:254] if identity.email and identity.email.strip() else None
    name = display_name_of(identity)

    def tx(cur: Cursor) -> None:
        if email is not None:
            cur.execute(
                "UPDATE users SET email = NULL, updated_at = now()"
                " WHERE lower(email) = lower(%s) AND id <> %s",
                (email, identity.user_id),
            )
        cur.execute(
            "INSERT INTO users AS u (id, email, display_name) VALUES (%(id)s, %(email)s, %(name)s)"
            " ON CONFLICT (id) DO UPDATE SET email = coalesce(EXCLUDED.email, u.email),"
            " display_name = CASE WHEN %(named)s OR u.display_name = '' THEN EXCLUDED.display_name"
            " ELSE u.display_name END, updated_at = now()"
            " WHERE u.email IS DISTINCT FROM coalesce(EXCLUDED.email, u.email)"
            " OR (%(named)s AND u.display_name IS DISTINCT FROM EXCLUDED.display_name)"
            " OR u.display_name = ''",
            {"id": identity.user_id, "email": email, "name": name, "named": bool(identity.name)},
        )

    try:
        db.run(tx)
    except psycopg.errors.UniqueViolation:
        db.run(tx)  # a concurrent first sight of the same email moved it meanwhile; once more settles it


# -- workspaces ------------------------------------------------------------------------------
def _workspace(cur: Cursor, user_id: str, workspace_id: str) -> dict[str, Any]:
    row = cur.execute(f"{_WORKSPACE} WHERE w.id = %s", (user_id, workspace_id)).fetchone()
    if row is None:
        raise NotFound("workspace not found")
    return Workspace.model_validate(row).wire()


def create(db: Database, actor_id: str, name: str) -> dict[str, Any]:
    """A new workspace whose creator is its owner (no ``member.added`` for the creator)."""

    def tx(cur: Cursor) -> dict[str, Any]:
        row = cur.execute(
            "INSERT INTO workspaces (name, created_by) VALUES (%s, %s) RETURNING id", (name, actor_id)
        ).fetchone()
        assert row is not None
        wid = str(row["id"])
        cur.execute(
            "INSERT INTO workspace_members (workspace_id, user_id, role) VALUES (%s, %s, 'owner')",
            (wid, actor_id),
        )
        return _workspace(cur, actor_id, wid)

    return db.run(tx)


def list_for(db: Database, user_id: str, *, cursor: str | None = None, limit: int = 100) -> dict[str, Any]:
    """A page of the user's workspaces in creation order; the cursor is the last one's position."""
    _limit(limit)

    def tx(cur: Cursor) -> dict[str, Any]:
        where: str = ""
        params: list[Any] = [user_id]
        if cursor:
            ts, wid = decode_cursor(cursor)
            where = " WHERE (w.created_at, w.id) > (%s, %s)"
            params += [ts, wid]
        rows = cur.execute(
            f"{_WORKSPACE}{where} ORDER BY w.created_at, w.id LIMIT %s", (*params, limit + 1)
        ).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        nxt = encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None
        return {"items": [Workspace.model_validate(r).wire() for r in rows], "next_cursor": nxt}

    return db.run(tx)


def get(db: Database, actor_id: str, workspace_id: str) -> dict[str, Any]:
    def tx(cur: Cursor) -> dict[str, Any]:
        require_member(cur, workspace_id, actor_id)
        return _workspace(cur, actor_id, workspace_id)

    return db.run(tx)


def rename(db: Database, actor_id: str, workspace_id: str, name: str) -> dict[str, Any]:
    """Admins and owners rename a workspace (the contract has no event for it: clients refetch)."""

    def tx(cur: Cursor) -> dict[str, Any]:
        require_member(cur, workspace_id, actor_id, at_least="admin")
        cur.execute("UPDATE workspaces SET name = %s, updated_at = now() WHERE id = %s", (name, workspace_id))
        return _workspace(cur, actor_id, workspace_id)

    return db.run(tx)


def delete(db: Database, actor_id: str, workspace_id: str) -> Change:
    """Owners delete a workspace; its members, tasks, activity and notifications go with it."""

    def tx(cur: Cursor) -> Change:
        _lock(cur, workspace_id)
        require_member(cur, workspace_id, actor_id, at_least="owner")
        cur.execute("DELETE FROM workspaces WHERE id = %s", (workspace_id,))
        return Change(None, Committed(workspace_id), dropped=True)

    return db.run(tx)


# -- members ---------------------------------------------------------------------------------
def _lock(cur: Cursor, workspace_id: str) -> str:
    """Lock the workspace row for the transaction (serialises membership changes); its name."""
    row = cur.execute("SELECT name FROM workspaces WHERE id = %s FOR UPDATE", (workspace_id,)).fetchone()
    if row is None:
        raise NotFound("workspace not found")
    return str(row["name"])


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
    """Every member (at most 50, so one page), in the order they joined."""

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
) -> Change:
    """Add an existing user (by id or email). 404 for an unknown user, 409 when already a member or
    when the workspace is full (the ``member_count`` CHECK refuses the 51st, whatever the race)."""
    if (user_id is None) == (email is None):
        raise ValidationError("exactly one of user_id and email is required", field="user_id")

    def tx(cur: Cursor) -> Change:
        name = _lock(cur, workspace_id)
        actor_role = require_member(cur, workspace_id, actor_id, at_least="admin")
        _may_grant(actor_role, role)
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
        name = _lock(cur, workspace_id)
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
    """Remove a member (admin+), or leave (any member removing themselves)."""

    def tx(cur: Cursor) -> Change:
        name = _lock(cur, workspace_id)
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


# -- after commit ----------------------------------------------------------------------------
def settle(rt: Runtime, gateway: ManagementApi, change: Change) -> None:
    """After the commit: close the evicted users' connections at API Gateway, then publish.

    The order is the point: connections are removed from Redis and deleted at API Gateway before
    the ``member.removed`` event fans out, so a removed member gets neither it nor anything after.
    """
    wid = change.committed.workspace_id
    if wid is None:
        return
    if change.dropped:
        close_workspace(rt, gateway, wid)
        return
    for uid in change.evict:
        presence.close_user(rt, gateway, wid, uid)
    events.publish(rt, change.committed, gateway)


def close_workspace(rt: Runtime, gateway: ManagementApi, workspace_id: str) -> int:
    """A deleted workspace: close every connection to it and drop its Redis state.

    Connections are removed in one script and closed without ``presence.left`` announcements: every
    peer that would hear one is being closed too.
    """
    cids = list(rt.store.workspace_connections(workspace_id))
    rt.store.remove_connections(workspace_id, cids)
    if cids:
        gateway.delete_many(cids)
    for cid in cids:
        rt.connections.pop(cid, None)
    rt.store.drop_workspace(workspace_id)
    return len(cids)


# -- reads beside the workspace ----------------------------------------------------------------
def activity(
    db: Database, actor_id: str, workspace_id: str, *, before: int | None = None, limit: int = 50
) -> dict[str, Any]:
    """A page of the activity log, newest first; ``next_cursor`` is the ``before`` of the next page."""
    _limit(limit)

    def tx(cur: Cursor) -> dict[str, Any]:
        require_member(cur, workspace_id, actor_id)
        where = "workspace_id = %s"
        params: list[Any] = [workspace_id]
        if before is not None:
            where += " AND seq < %s"
            params.append(before)
        rows = cur.execute(
            f"SELECT * FROM activity WHERE {where} ORDER BY seq DESC LIMIT %s", (*params, limit + 1)
        ).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        return {
            "items": [events.activity_frame(r) for r in rows],
            "next_cursor": int(rows[-1]["seq"]) if more else None,
        }

    return db.run(tx)


def presence_of(rt: Runtime, actor_id: str, workspace_id: str) -> dict[str, Any]:
    """Who is online in the workspace now (members only)."""
    rt.db.run(lambda cur: require_member(cur, workspace_id, actor_id))
    return {"items": presence.snapshot(rt, workspace_id), "next_cursor": None}


def issue_ticket(db: Database, settings: Settings, user_id: str, workspace_id: str) -> dict[str, Any]:
    """A single-use WebSocket ticket for a member, with the URL that carries it (contract 3.1)."""
    if not settings.websocket_url:
        raise ConfigError("WEBSOCKET_URL: is required to hand out WebSocket tickets")
    db.run(lambda cur: require_member(cur, workspace_id, user_id))
    ticket, exp = tokens.issue_ticket(settings, user_id, workspace_id)
    sep = "&" if "?" in settings.websocket_url else "?"
    return {
        "ticket": ticket,
        "url": f"{settings.websocket_url}{sep}token={ticket}",
        "expires_at": iso(datetime.fromtimestamp(exp, tz=UTC)),
    }
