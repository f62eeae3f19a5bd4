"""Revocation that cannot be lost: live connections reconciled against memberships.

Removing a member commits in Postgres first; closing their connections (Redis, then API Gateway)
comes after and can fail - Redis down or failing over at that moment. :func:`close_with_retry` tries
again a few times; whatever still slips through, the scheduled sweeper's :func:`reconcile` finds:
every live connection whose user is no longer a member of its workspace (or whose workspace is
gone) is removed from every Redis structure and closed at API Gateway. So a removed member hears
nothing more within one sweep (a minute), even if Redis failed during the removal.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from collab.adapters.postgres.database import Cursor
from collab.domain import presence
from collab.errors import CollabError
from collab.observability import logger

if TYPE_CHECKING:
    from collab.adapters.apigw.management import ManagementApi
    from collab.runtime import Runtime

CLOSE_ATTEMPTS = 3  # then the sweeper's reconciliation takes over
CLOSE_BACKOFF_S = 0.2


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


def reconcile(rt: Runtime, gateway: ManagementApi) -> int:
    """Close every live connection whose user is not a member of its workspace any more. Returns
    how many were closed."""
    live = rt.store.live_connections()
    if not live:
        return 0
    wids = sorted(live)

    def tx(cur: Cursor) -> set[tuple[str, str]]:
        rows = cur.execute(
            "SELECT workspace_id::text AS wid, user_id FROM workspace_members"
            " WHERE workspace_id = ANY(%s::uuid[])",
            (wids,),
        ).fetchall()
        return {(r["wid"], r["user_id"]) for r in rows}

    members = rt.db.run(tx)
    closed = 0
    for wid, conns in live.items():
        stale = [cid for cid, uid in conns.items() if (wid, uid) not in members]
        if not stale:
            continue
        removed = rt.store.remove_connections(wid, stale)
        gateway.delete_many(stale)
        for cid in stale:
            rt.connections.pop(cid, None)
        presence.settle(rt, gateway, wid, removed)
        closed += len(stale)
    if closed:
        logger.warning("closed connections of users who are no longer members", extra={"closed": closed})
    return closed
