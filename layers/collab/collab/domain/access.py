"""Who may do what: membership and role checks, run inside the caller's transaction."""

from __future__ import annotations

from collab.adapters.postgres.database import Cursor
from collab.errors import Forbidden, NotFound

RANK = {"member": 1, "admin": 2, "owner": 3}


def role_of(cur: Cursor, workspace_id: str, user_id: str, *, lock: bool = False) -> str | None:
    """The user's role. With ``lock``, the member row is locked (``FOR KEY SHARE``) until the
    transaction ends: a removal (which deletes the row) waits for this transaction, so a mutation
    that passed this check commits before ``member.removed``, never after it."""
    row = cur.execute(
        "SELECT role FROM workspace_members WHERE workspace_id = %s AND user_id = %s"
        + (" FOR KEY SHARE" if lock else ""),
        (workspace_id, user_id),
    ).fetchone()
    return None if row is None else str(row["role"])


def lock_membership(cur: Cursor, workspace_id: str, user_id: str) -> bool:
    """Lock the member row for the transaction (see :func:`role_of`); False when there is none."""
    return role_of(cur, workspace_id, user_id, lock=True) is not None


def require_member(
    cur: Cursor, workspace_id: str, user_id: str, *, at_least: str = "member", lock: bool = False
) -> str:
    """The user's role in the workspace; 404 when it does not exist, 403 when not (enough of) a member."""
    role = role_of(cur, workspace_id, user_id, lock=lock)
    if role is None:
        exists = cur.execute("SELECT 1 FROM workspaces WHERE id = %s", (workspace_id,)).fetchone()
        if exists is None:
            raise NotFound("workspace not found")
        raise Forbidden("not a member of this workspace")
    if RANK[role] < RANK[at_least]:
        raise Forbidden(f"requires the {at_least} role")
    return role
