"""Least-privilege Postgres (migration 0002): the functions' role may change the app's rows and
nothing else, and carries timeouts; the migration role owns the schema."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from collab.adapters.postgres.database import Database
from collab.adapters.postgres.migrate import RUNTIME_ROLE, set_passwords


def as_role(dsn: str, role: str) -> str:
    """The test database's URL for another role (the machine's Postgres trusts loopback logins)."""
    u = urlsplit(dsn)
    host = u.netloc.rsplit("@", 1)[-1]
    return urlunsplit((u.scheme, f"{role}@{host}", u.path, u.query, u.fragment))


def test_the_runtime_role_has_dml_on_the_app_tables_only_and_timeouts(settings: Any, clean: None) -> None:
    with psycopg.connect(as_role(settings.dsn, RUNTIME_ROLE), autocommit=True) as conn:
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "3s"
        assert conn.execute("SHOW lock_timeout").fetchone()[0] == "1s"
        assert conn.execute("SHOW idle_in_transaction_session_timeout").fetchone()[0] == "10s"
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE intruder (x int)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM schema_migrations")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("ALTER TABLE tasks ADD COLUMN x int")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("TRUNCATE notifications")


def test_the_app_runs_as_the_runtime_role(settings: Any, clean: None) -> None:
    from collab.domain import tasks
    from collab.protocol.client_frames import TaskDraft

    db = Database(as_role(settings.dsn, RUNTIME_ROLE))
    try:

        def setup(cur: Any) -> str:
            for uid in ("ann", "bob"):
                cur.execute("INSERT INTO users (id, display_name) VALUES (%s, %s)", (uid, uid))
            wid = str(
                cur.execute(
                    "INSERT INTO workspaces (name, created_by) VALUES ('b', 'ann') RETURNING id"
                ).fetchone()["id"]
            )
            for uid, role in (("ann", "owner"), ("bob", "member")):  # the member-count trigger runs
                cur.execute(
                    "INSERT INTO workspace_members (workspace_id, user_id, role) VALUES (%s, %s, %s)",
                    (wid, uid, role),
                )
            return wid

        wid = db.run(setup)
        m = tasks.create(db, "ann", TaskDraft(title="t", assigned_to="bob"), workspace_id=wid)
        tasks.update(db, "ann", m.task["id"], {"title": "u"}, scope=wid)
        tasks.delete(db, "ann", m.task["id"], scope=wid)
        assert m.seq == 1
    finally:
        db.close()


def test_the_migration_role_owns_the_schema_and_passwords_come_from_secrets(settings: Any) -> None:
    with psycopg.connect(settings.dsn, autocommit=True) as conn:
        owners = {
            r[0]
            for r in conn.execute("SELECT tableowner FROM pg_tables WHERE schemaname = 'public'").fetchall()
        }
        assert owners == {"collab_migrator"}
        set_passwords(settings.dsn, {RUNTIME_ROLE: "from-its-secret'; DROP TABLE users; --"})
        assert conn.execute("SELECT to_regclass('public.users')").fetchone()[0] == "users"
    with pytest.raises(ValueError, match="not a role"):
        set_passwords(settings.dsn, {"postgres": "x"})
