"""Schema migrations: numbered SQL files in ``migrations/`` beside this module, applied in order.

Each file runs in its own transaction and is recorded in ``schema_migrations``. A session-level
advisory lock serialises concurrent runners (two deploys, two containers): the second waits, then
finds everything applied and does nothing. Running it again is a no-op.

Roles (0002): the functions log in as ``collab_runtime`` (DML only, with timeouts), migrations run
as ``collab_migrator``, which owns the schema: once 0002 is applied, every later file runs under
``SET LOCAL ROLE collab_migrator`` unless its first line says ``-- runs as: admin`` (0002 itself,
which creates the roles). :func:`set_passwords` gives the roles the passwords of their secrets.
"""

from __future__ import annotations

import random
import time
from importlib import resources

import psycopg
from psycopg import sql

RUNTIME_ROLE, MIGRATION_ROLE = "collab_runtime", "collab_migrator"
ROLES_MIGRATION = "0002_roles"  # from here on, migrations run as MIGRATION_ROLE

# Arbitrary constant naming "collab schema migrations" for pg_advisory_lock.
_LOCK_ID = 0x636F6C6C6162
_CATALOG_RETRIES = 5


def migration_files() -> list[tuple[str, str]]:
    folder = resources.files("collab.adapters.postgres") / "migrations"
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".sql"))
    return [(name.removesuffix(".sql"), (folder / name).read_text(encoding="utf-8")) for name in names]


def migrate(dsn: str) -> list[str]:
    """Apply pending migrations; returns the versions applied by this call."""
    applied_now: list[str] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
            for version, text in migration_files():
                if version in done:
                    continue
                roles_in_place = ROLES_MIGRATION in done or ROLES_MIGRATION in applied_now
                as_migrator = roles_in_place and not text.startswith("-- runs as: admin")
                _apply(conn, version, text, as_migrator)
                applied_now.append(version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return applied_now


def _apply(conn: psycopg.Connection, version: str, text: str, as_migrator: bool) -> None:
    """One migration in one transaction. The advisory lock is per database, but roles are the
    cluster's: two databases of one cluster migrating at once (two stages on one instance, parallel
    test databases) can update the same role's catalog row, and Postgres then refuses the later
    writer with "tuple concurrently updated" (XX000). The transaction was rolled back whole, so it
    is applied again, a few times, after a short pause."""
    for attempt in range(_CATALOG_RETRIES + 1):
        try:
            with conn.transaction():
                if as_migrator:
                    conn.execute(f"SET LOCAL ROLE {MIGRATION_ROLE}")  # objects owned by the migrator
                conn.execute(text.encode())
                conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
            return
        except psycopg.errors.InternalError_ as exc:
            if "tuple concurrently updated" not in str(exc) or attempt == _CATALOG_RETRIES:
                raise
            time.sleep(0.05 * (attempt + 1) * (1 + random.random()))


def set_passwords(dsn: str, passwords: dict[str, str]) -> None:
    """Give the roles the passwords of their secrets (the migrate function reads them from
    Secrets Manager; RDS Proxy logs in with the same secrets). Utility statements take no bind
    parameters: the password is quoted as a literal by psycopg."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for role, password in passwords.items():
            if role not in (RUNTIME_ROLE, MIGRATION_ROLE):
                raise ValueError(f"not a role of this schema: {role}")
            conn.execute(
                sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(password)
                )
            )
