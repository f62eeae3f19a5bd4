"""Workspaces: create, list, rename, delete, their activity and presence, tickets to join them live,
and the after-commit part of every workspace and membership change (:func:`settle`).

Like :mod:`collab.domain.tasks`, every mutation is one Postgres transaction that checks the caller's
role, writes the change, takes the workspace's next ``seq`` and writes the activity row
(:func:`collab.domain.events.record`) and the affected user's notification
(:func:`collab.domain.events.notify`, never to the actor). It returns a :class:`Change`;
:func:`settle` does the after-commit part.

Any member reads the workspace, its tasks, activity and presence; ``admin`` and ``owner`` rename it;
only an ``owner`` deletes it. Memberships are :mod:`collab.domain.members`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from collab.adapters.postgres.database import Cursor, Database
from collab.auth import tokens
from collab.clock import iso
from collab.domain import events, presence, revocation
from collab.domain.access import require_member
from collab.domain.events import Committed
from collab.domain.tasks import decode_cursor, encode_cursor
from collab.errors import ConfigError, Conflict, NotFound, ValidationError
from collab.models import Workspace

if TYPE_CHECKING:
    from collab.adapters.apigw.management import ManagementApi
    from collab.config import Settings
    from collab.runtime import Runtime

MAX_PAGE = 200  # the largest page any list route returns; bounds a response to well under 6 MB

_WORKSPACE = (
    "SELECT w.id, w.name, m.role, w.created_by, w.created_at, w.updated_at, w.member_count, w.last_seq"
    " FROM workspaces w JOIN workspace_members m ON m.workspace_id = w.id AND m.user_id = %s"
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


def lock(cur: Cursor, workspace_id: str) -> str:
    """Lock the workspace row for the transaction (serialises membership changes); its name."""
    row = cur.execute("SELECT name FROM workspaces WHERE id = %s FOR UPDATE", (workspace_id,)).fetchone()
    if row is None:
        raise NotFound("workspace not found")
    return str(row["name"])


# -- workspaces ------------------------------------------------------------------------------
def _workspace(cur: Cursor, user_id: str, workspace_id: str) -> dict[str, Any]:
    row = cur.execute(f"{_WORKSPACE} WHERE w.id = %s", (user_id, workspace_id)).fetchone()
    if row is None:
        raise NotFound("workspace not found")
    return Workspace.model_validate(row).wire()


def create(db: Database, actor_id: str, name: str, *, limit: int | None = None) -> dict[str, Any]:
    """A new workspace whose creator is its owner (no ``member.added`` for the creator). With
    ``limit``, a user owns at most that many workspaces (each holds Redis state and fan-out lists):
    the user row is locked, so concurrent creates cannot both pass the count."""

    def tx(cur: Cursor) -> dict[str, Any]:
        if limit is not None:
            cur.execute("SELECT 1 FROM users WHERE id = %s FOR UPDATE", (actor_id,))
            owned = cur.execute(
                "SELECT count(*) AS n FROM workspace_members WHERE user_id = %s AND role = 'owner'",
                (actor_id,),
            ).fetchone()
            if owned is not None and int(owned["n"]) >= limit:
                raise Conflict(f"a user owns at most {limit} workspaces")
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


def list_for(db: Database, user_id: str, *, cursor: str | None, limit: int) -> dict[str, Any]:
    """A page of the user's workspaces in creation order; the cursor is the last one's position."""
    _limit(limit)

    def tx(cur: Cursor) -> dict[str, Any]:
        where: str = ""
        params: list[Any] = [user_id]
        if cursor:
            position = decode_cursor(cursor)
            if position is None:  # names no position: past the end
                return {"items": [], "next_cursor": None}
            where = " WHERE (w.created_at, w.id) > (%s, %s)"
            params += list(position)
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
        lock(cur, workspace_id)
        require_member(cur, workspace_id, actor_id, at_least="owner")
        cur.execute("DELETE FROM workspaces WHERE id = %s", (workspace_id,))
        revocation.record(cur, workspace_id, None)
        return Change(None, Committed(workspace_id), dropped=True)

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
    for uid in change.evict:  # retried; what still fails, the sweeper reconciles (domain/revocation)
        revocation.close_with_retry(rt, gateway, wid, uid)
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
    db: Database, actor_id: str, workspace_id: str, *, before: int | None, limit: int
) -> dict[str, Any]:
    """A page of the activity log, newest first; ``next_cursor`` is the ``before`` of the next page.
    The route holds the page's default size (the OpenAPI document shows it)."""
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
