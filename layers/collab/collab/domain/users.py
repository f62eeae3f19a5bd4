"""Users: a row per identity, created or refreshed from the caller's access token.

Users exist once they have called the HTTP API (``collab.http.api`` refreshes the caller's row once
per container per identity); members are added by user id or email from these rows.
"""

from __future__ import annotations

import re

import psycopg

from collab.adapters.postgres.database import Cursor, Database
from collab.auth import tokens
from collab.errors import Conflict

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1


def display_name_of(identity: tokens.Identity) -> str:
    """What peers see: the token's name, else its email, else the user id (control chars dropped)."""
    raw = identity.name or identity.email or identity.user_id
    return _CONTROL.sub("", raw).strip()[:100] or identity.user_id[:100]


def upsert_user(db: Database, identity: tokens.Identity) -> None:
    """Create the caller's user row on first sight, refresh email and name when the token's differ.

    A claim the token lacks keeps the stored value. An email is bound to this account only when the
    token does not say ``email_verified: false`` (an identity provider that lets users type their
    own email must not let them claim someone else's invitations: members are added by email). An
    email belongs to one user, compared without case: it moves to the newest token's account only
    when the account holding it never verified it; an account that verified it keeps it, and the
    newcomer's email stays as it was.
    """
    email = identity.email.strip()[:254] if identity.email and identity.email.strip() else None
    if identity.email_verified is False:
        email = None  # never bound; the stored email (if any) stays
    verified = identity.email_verified is True
    name = display_name_of(identity)

    def tx(cur: Cursor) -> None:
        bind = email
        if email is not None:
            holder = cur.execute(
                "SELECT id, email_verified FROM users WHERE lower(email) = lower(%s) AND id <> %s FOR UPDATE",
                (email, identity.user_id),
            ).fetchone()
            if holder is not None and holder["email_verified"]:
                bind = None  # verified by its holder: it stays theirs
            elif holder is not None:
                cur.execute(
                    "UPDATE users SET email = NULL, email_verified = false, updated_at = now() WHERE id = %s",
                    (holder["id"],),
                )
        cur.execute(
            "INSERT INTO users AS u (id, email, email_verified, display_name)"
            " VALUES (%(id)s, %(email)s, %(verified)s, %(name)s)"
            " ON CONFLICT (id) DO UPDATE SET email = coalesce(EXCLUDED.email, u.email),"
            " email_verified = CASE WHEN EXCLUDED.email IS NULL THEN u.email_verified"
            " ELSE EXCLUDED.email_verified END,"
            " display_name = CASE WHEN %(named)s OR u.display_name = '' THEN EXCLUDED.display_name"
            " ELSE u.display_name END, updated_at = now()"
            " WHERE u.email IS DISTINCT FROM coalesce(EXCLUDED.email, u.email)"
            " OR (EXCLUDED.email IS NOT NULL AND u.email_verified IS DISTINCT FROM EXCLUDED.email_verified)"
            " OR (%(named)s AND u.display_name IS DISTINCT FROM EXCLUDED.display_name)"
            " OR u.display_name = ''",
            {
                "id": identity.user_id,
                "email": bind,
                "verified": verified and bind is not None,
                "name": name,
                "named": bool(identity.name),
            },
        )

    try:
        db.run(tx)
    except Conflict as exc:  # Database.run hands a unique violation on as Conflict("already exists")
        if not isinstance(exc.__cause__, psycopg.errors.UniqueViolation):
            raise
        db.run(tx)  # a concurrent first sight of the same email took it meanwhile; once more settles it
