"""Schema migrations: numbered SQL files in ``migrations/`` beside this module, applied in order.

Each file runs in its own transaction and is recorded in ``schema_migrations``. A session-level
advisory lock serialises concurrent runners (two deploys, two containers): the second waits, then
finds everything applied and does nothing. Running it again is a no-op.
"""

from __future__ import annotations

from importlib import resources

import psycopg

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
            for version, sql in migration_files():
                if version in done:
                    continue
                with conn.transaction():
                    conn.execute(sql.encode())
                    conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
                applied_now.append(version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return applied_now
