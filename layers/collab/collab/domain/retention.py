"""Retention: what is kept how long, pruned in batches by the scheduled sweeper.

- activity and notifications: ``Limits.retention_days`` (default 90). A ``sync`` from a seq whose
  events were pruned answers ``resync: true`` (the client reloads over HTTP), as it always did
  when the log could not cover a range.
- the request ledger: ``Limits.ledger_retention_hours`` (default 24; the contract promises 1 h).
- used tickets: once expired (an expired ticket is refused by its ``exp`` anyway).

Each table is pruned in batches of :data:`BATCH` rows, at most :data:`MAX_BATCHES` per run, so a
run never holds long locks nor outlives the function's timeout; a backlog drains over a few runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from collab.adapters.postgres.database import Cursor

if TYPE_CHECKING:
    from collab.adapters.postgres.database import Database
    from collab.config import Limits

BATCH = 5000
MAX_BATCHES = 20

_PRUNE = {
    "activity": "DELETE FROM activity WHERE ctid IN (SELECT ctid FROM activity"
    " WHERE created_at < now() - make_interval(days => %(days)s) LIMIT %(batch)s)",
    "notifications": "DELETE FROM notifications WHERE ctid IN (SELECT ctid FROM notifications"
    " WHERE created_at < now() - make_interval(days => %(days)s) LIMIT %(batch)s)",
    "request_ledger": "DELETE FROM request_ledger WHERE ctid IN (SELECT ctid FROM request_ledger"
    " WHERE created_at < now() - make_interval(hours => %(hours)s) LIMIT %(batch)s)",
    "used_tickets": "DELETE FROM used_tickets WHERE ctid IN (SELECT ctid FROM used_tickets"
    " WHERE expires_at < now() LIMIT %(batch)s)",
}


def prune(
    db: Database, limits: Limits, *, batch: int = BATCH, max_batches: int = MAX_BATCHES
) -> dict[str, int]:
    """Delete what is past its retention; returns the rows deleted per table."""
    params = {"days": limits.retention_days, "hours": limits.ledger_retention_hours, "batch": batch}
    out: dict[str, int] = {}
    for table, sql in _PRUNE.items():

        def tx(cur: Cursor, sql: str = sql) -> int:
            cur.execute(sql, params)
            return int(cur.rowcount or 0)

        total = 0
        for _ in range(max_batches):
            n = db.run(tx)
            total += n
            if n < batch:
                break
        out[table] = total
    return out
