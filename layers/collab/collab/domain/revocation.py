"""Revocation that cannot be lost: live connections reconciled against memberships.

Removing a member commits in Postgres first; closing their connections (Redis, then API Gateway)
comes after and can fail - Redis down or failing over at that moment. :func:`close_with_retry` tries
again a few times; whatever still slips through, the scheduled sweeper's :func:`reconcile` finds:
every live connection whose user is no longer a member of its workspace (or whose workspace is
gone) is removed from every Redis structure and closed at API Gateway. So a removed member hears
nothing more within one sweep (a minute), even if Redis failed during the removal.

The sweeper does not read every live connection for that (100,000 of them would be ~100 Redis
calls and a membership query of every workspace, every minute): removals and deletions write a row
to ``revocations`` in their own transaction, and the sweep looks only at the workspaces those name.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from collab.adapters.postgres.database import Cursor
from collab.domain import presence
from collab.errors import CollabError
from collab.observability import logger

if TYPE_CHECKING:
    from collab.adapters.apigw.management import ManagementApi
    from collab.runtime import Runtime

CLOSE_ATTEMPTS = 3  # then the sweeper's reconciliation takes over
CLOSE_BACKOFF_S = 0.2
# A revocation is reconciled by sweeps until one that read it this long after it succeeded: longer
# than a $connect that checked membership just before the removal takes to register (its 10 s).
SETTLE_S = 60
RECONCILE_BATCH = 1000  # revocations per sweep; more wait for the next minute


def close_with_retry(rt: Runtime, gateway: ManagementApi, workspace_id: str, user_id: str) -> bool:
    """Close a removed member's connections, retrying a failing Redis a few times (with backoff).
    False when every attempt failed: the sweeper reconciles it within a minute."""
    for attempt in range(1, CLOSE_ATTEMPTS + 1):
        try:
            presence.close_user(rt, gateway, workspace_id, user_id)
            return True
        except CollabError as exc:
            logger.warning(
                "closing a removed member's connections failed",
                extra={"attempt": attempt, "reason": exc.code},
            )
            if attempt < CLOSE_ATTEMPTS:
                time.sleep(CLOSE_BACKOFF_S * attempt)
    return False


def record(cur: Cursor, workspace_id: str, user_id: str | None) -> None:
    """In the removal's (or the deletion's, ``user_id`` None) own transaction: what the sweeper must
    check, should closing the connections after the commit fail."""
    cur.execute("INSERT INTO revocations (workspace_id, user_id) VALUES (%s, %s)", (workspace_id, user_id))


def reconcile(rt: Runtime, gateway: ManagementApi, *, batch: int = RECONCILE_BATCH) -> int:
    """Close every live connection that a recorded revocation left behind: the removed user's (who
    is not a member again by now), every one of a deleted workspace. Returns how many were closed.

    Only the workspaces with recent revocations are read (one Redis hash each), so a sweep costs
    the same with 100 live connections or 100,000 (``bench.sweeper_scale``). A revocation leaves
    the log once a sweep that read it :data:`SETTLE_S` or more after it was made has succeeded: a
    ``$connect`` that checked membership just before the removal has registered by then."""

    def read(cur: Cursor) -> list[dict[str, Any]]:
        return cur.execute(
            "SELECT id, workspace_id::text AS wid, user_id, at < now() - make_interval(secs => %s) AS settled"
            " FROM revocations ORDER BY id LIMIT %s",
            (SETTLE_S, batch),
        ).fetchall()

    rows = rt.db.run(read)
    if not rows:
        return 0
    wids = sorted({r["wid"] for r in rows})
    live = rt.store.connections_of(wids)
    whole = {r["wid"] for r in rows if r["user_id"] is None}
    users = {(r["wid"], r["user_id"]) for r in rows if r["user_id"] is not None}
    suspects = [
        (wid, cid, uid)
        for wid, conns in live.items()
        for cid, uid in conns.items()
        if wid in whole or (wid, uid) in users
    ]
    members = _members(rt, {(wid, uid) for wid, _, uid in suspects}) if suspects else set()
    stale: dict[str, list[str]] = {}
    for wid, cid, uid in suspects:
        if (wid, uid) not in members:
            stale.setdefault(wid, []).append(cid)
    closed = 0
    for wid, cids in stale.items():
        removed = rt.store.remove_connections(wid, cids)
        gateway.delete_many(cids)
        for cid in cids:
            rt.connections.pop(cid, None)
        if wid in whole:
            rt.store.drop_workspace(wid)  # nobody is left to tell
        else:
            presence.settle(rt, gateway, wid, removed)
        closed += len(cids)
    settled = [int(r["id"]) for r in rows if r["settled"]]
    if settled:
        rt.db.run(lambda cur: cur.execute("DELETE FROM revocations WHERE id = ANY(%s)", (settled,)))
    if closed:
        logger.warning("closed connections of users who are no longer members", extra={"closed": closed})
    return closed


def _members(rt: Runtime, pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of the (workspace id, user id) pairs are memberships now (re-added since, say)."""
    wids, uids = [p[0] for p in pairs], [p[1] for p in pairs]

    def tx(cur: Cursor) -> set[tuple[str, str]]:
        rows = cur.execute(
            "SELECT m.workspace_id::text AS wid, m.user_id FROM workspace_members m"
            " JOIN unnest(%s::uuid[], %s::text[]) AS p(wid, uid)"
            " ON m.workspace_id = p.wid AND m.user_id = p.uid",
            (wids, uids),
        ).fetchall()
        return {(r["wid"], r["user_id"]) for r in rows}

    return rt.db.run(tx)
