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

from importlib import resources

import psycopg
from psycopg import sql

RUNTIME_ROLE, MIGRATION_ROLE = "collab_runtime", "collab_migrator"
ROLES_MIGRATION = "0002_roles"  # from here on, migrations run as MIGRATION_ROLE

# Arbitrary constant naming "collab schema migrations" for pg_advisory_lock.
_LOCK_ID = 0x636F6C6C6162


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
                with conn.transaction():
                    roles_in_place = ROLES_MIGRATION in done or ROLES_MIGRATION in applied_now
                    if roles_in_place and not text.startswith("-- runs as: admin"):
                        conn.execute(f"SET LOCAL ROLE {MIGRATION_ROLE}")  # objects owned by the migrator
                    conn.execute(text.encode())
                    conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
                applied_now.append(version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return applied_now


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
