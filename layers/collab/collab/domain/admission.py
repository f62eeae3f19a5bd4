"""Admission: a connection's first frame records its ticket as used, for good, and checks membership.

``$connect`` checks the ticket and registers the connection with Redis alone (:mod:`collab.ws.connect`),
so its cold start pays for neither psycopg nor a TLS handshake with Postgres (docs/performance.md,
"Cold start as AWS runs it"). The rest happens at the connection's first frame, in the message
function, which has Postgres at hand, and before that frame is served (:func:`collab.ws.message.handle`):

- the ticket's ``jti`` goes into ``used_tickets``, the record that survives a loss of Redis. A second
  connection opened with the same ticket (possible only after Redis lost the first one's record) is
  refused here, before it has received or changed anything: of all the connections a ticket opens,
  exactly one is ever admitted;
- the user must still be a member of the workspace (a removal after the ticket was issued);
- the member's display name, which presence shows, is read.

Admitting the same connection again is allowed (``used_tickets.connection_id``): a retry after a
commit whose outcome was unknown, or after Redis failed to record the admission, is not a replay.
A connection is not a fan-out target before its first ``sync`` (:func:`collab.domain.presence.join`),
which comes after its admission, so nothing reaches a connection that was never admitted.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from collab.errors import Forbidden, Unauthorized

if TYPE_CHECKING:
    from collab.adapters.redis.store import ConnInfo
    from collab.runtime import Runtime

# One statement: the ticket recorded (or found recorded by this very connection) and the member's
# name. The insert is rolled back with the transaction when the user is not a member.
_ADMIT = """
WITH used AS (
    INSERT INTO used_tickets (jti, expires_at, connection_id) VALUES (%(jti)s, to_timestamp(%(exp)s), %(cid)s)
    ON CONFLICT (jti) DO UPDATE SET connection_id = EXCLUDED.connection_id
        WHERE used_tickets.connection_id = EXCLUDED.connection_id
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM used) AS fresh,
       (SELECT coalesce(nullif(u.display_name, ''), nullif(u.email, ''), m.user_id)
          FROM workspace_members m JOIN users u ON u.id = m.user_id
         WHERE m.workspace_id = %(wid)s AND m.user_id = %(uid)s) AS name
"""


def admit(rt: Runtime, info: ConnInfo) -> ConnInfo | None:
    """The admitted connection (its name known, its ticket spent), or None when it is gone from
    Redis meanwhile. Raises :class:`Unauthorized` for a ticket another connection was admitted
    with, :class:`Forbidden` for a user who is not a member of the workspace."""
    if info.admitted:
        return info
    params = {
        "jti": info.ticket_jti,
        "exp": info.ticket_expires_at,
        "cid": info.connection_id,
        "wid": info.workspace_id,
        "uid": info.user_id,
    }

    def tx(cur: Any) -> str:
        row = cur.execute(_ADMIT, params).fetchone()
        if not row["fresh"]:
            raise Unauthorized("ticket already used")
        if row["name"] is None:
            raise Forbidden("not a member of this workspace")
        return str(row["name"])

    name = rt.db.run(tx)
    if not rt.store.admitted(info.connection_id, name):
        return None
    admitted = dataclasses.replace(info, display_name=name, ticket_jti="", ticket_expires_at=0)
    rt.remember(admitted)
    return admitted
