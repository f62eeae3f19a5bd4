"""Users: a row per identity, created or refreshed from the caller's access token.

Users exist once they have called the HTTP API (``collab.http.api`` refreshes the caller's row once
per container per identity); members are added by user id or email from these rows.
"""

from __future__ import annotations

import re

import psycopg

from collab.adapters.postgres.database import Cursor, Database
from collab.auth import tokens

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1


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
