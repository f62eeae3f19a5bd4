import threading

import psycopg
import pytest
from test_interleavings import InThread, wait_until_a_transaction_waits_for_a_lock

from collab.adapters.postgres.migrate import migrate, migration_files, set_passwords
from collab_dev.cli import main


def schema_snapshot(dsn):
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns"
            " WHERE table_schema = 'public' ORDER BY 1, 2"
        ).fetchall()


def fresh_db(settings, name):
    with psycopg.connect(settings.dsn, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    from urllib.parse import urlsplit, urlunsplit

    u = urlsplit(settings.dsn)
    return urlunsplit((u.scheme, u.netloc, f"/{name}", u.query, u.fragment))


def drop_db(settings, name):
    with psycopg.connect(settings.dsn, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_migrate_twice_is_a_no_op(settings, monkeypatch, capsys):
    dsn = fresh_db(settings, f"mig_twice_{id(settings) % 10000}")
    try:
        assert migrate(dsn) == [v for v, _ in migration_files()]
        first = schema_snapshot(dsn)
        monkeypatch.setenv("DATABASE_URL", dsn)
        monkeypatch.setenv("REDIS_URL", settings.redis_url)
        monkeypatch.setenv("JWT_SECRET", "x" * 32)
        assert main(["migrate"]) == 0
        assert "up to date" in capsys.readouterr().err
        assert schema_snapshot(dsn) == first
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(
                migration_files()
            )
    finally:
        drop_db(settings, f"mig_twice_{id(settings) % 10000}")


def test_concurrent_migrations_apply_once_without_error(settings):
    name = f"mig_conc_{id(settings) % 10000}"
    dsn = fresh_db(settings, name)
    try:
        results, errors = [], []
        barrier = threading.Barrier(4)

        def run():
            barrier.wait()
            try:
                results.append(migrate(dsn))
            except Exception as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert sorted(len(r) for r in results) == [0, 0, 0, len(migration_files())]
        assert {t for t, *_ in schema_snapshot(dsn)} >= {
            "users",
            "workspaces",
            "workspace_members",
            "tasks",
            "activity",
            "notifications",
        }
    finally:
        drop_db(settings, name)


def test_a_role_changed_from_another_database_meanwhile_does_not_fail_the_migration(settings, rt):
    """Roles are the cluster's and the advisory lock is the database's: a second database of the
    same cluster (a parallel test database, a second stage) changing collab_runtime while 0002 runs
    makes Postgres refuse 0002's ALTER ROLE with "tuple concurrently updated". Here the other
    database's transaction holds that row until 0002 waits on it, then commits."""
    name = f"mig_role_race_{id(settings) % 10000}"
    dsn = fresh_db(settings, name)
    other = psycopg.connect(settings.dsn)
    try:
        migrate(settings.dsn)  # the roles exist in the cluster
        other.execute("ALTER ROLE collab_runtime SET statement_timeout = '3s'")  # row held, open
        runner = InThread(lambda: migrate(dsn))
        wait_until_a_transaction_waits_for_a_lock(rt, database=name)  # 0002, on the role's row
        other.commit()
        assert runner.result() == [v for v, _ in migration_files()]
        with psycopg.connect(dsn) as conn:
            applied = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0]
        assert applied == len(migration_files())
    finally:
        other.close()
        drop_db(settings, name)


def owners(dsn):
    with psycopg.connect(dsn) as conn:
        tables = conn.execute("SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'")
        return {t: o for t, o in tables}


def test_every_table_of_every_migration_is_the_migrators_on_a_new_database_and_on_an_old_one(
    settings, monkeypatch
):
    """From 0002 on, migrations run as collab_migrator: in the run that applies 0002 (a new
    database) and in later runs (0002 recorded before). Tables of 0003 and after say which ran."""
    import collab.adapters.postgres.migrate as m

    fresh, old = f"mig_own_new_{id(settings) % 10000}", f"mig_own_old_{id(settings) % 10000}"
    try:
        dsn = fresh_db(settings, fresh)
        migrate(dsn)
        assert set(owners(dsn).values()) == {"collab_migrator"} and "request_ledger" in owners(dsn)
        dsn = fresh_db(settings, old)
        everything = migration_files()
        monkeypatch.setattr(m, "migration_files", lambda: everything[:2])  # a database of 0001-0002
        assert migrate(dsn) == ["0001_initial", "0002_roles"]
        monkeypatch.setattr(m, "migration_files", lambda: everything)
        assert migrate(dsn) == [v for v, _ in everything[2:]]
        assert set(owners(dsn).values()) == {"collab_migrator"} and "request_ledger" in owners(dsn)
    finally:
        drop_db(settings, fresh)
        drop_db(settings, old)


class _Catalog:
    """A connection whose statements fail with the catalog race ``fail`` times, then pass."""

    def __init__(self, fail, message="tuple concurrently updated"):
        self.fail, self.message, self.statements, self.attempts = fail, message, [], 0

    def transaction(self):
        import contextlib

        self.attempts += 1
        return contextlib.nullcontext()

    def execute(self, statement, params=None):
        if self.fail:
            self.fail -= 1
            raise psycopg.errors.InternalError_(self.message)
        self.statements.append(statement)


def test_a_catalog_race_is_retried_five_times_with_growing_pauses_then_raised(monkeypatch):
    import collab.adapters.postgres.migrate as m

    pauses = []
    monkeypatch.setattr(m.time, "sleep", pauses.append)
    monkeypatch.setattr(m.random, "random", lambda: 0.5)
    conn = _Catalog(fail=5)
    m._apply(conn, "0009_x", "SELECT 1", as_migrator=True)
    assert conn.attempts == 6 and pauses == pytest.approx([0.075, 0.15, 0.225, 0.3, 0.375])
    assert conn.statements[0] == "SET LOCAL ROLE collab_migrator"
    pauses.clear()
    conn = _Catalog(fail=6)
    with pytest.raises(psycopg.errors.InternalError_):
        m._apply(conn, "0009_x", "SELECT 1", as_migrator=False)
    assert conn.attempts == 6 and len(pauses) == 5
    other = _Catalog(fail=1, message="could not open file")  # not the race: raised at once
    with pytest.raises(psycopg.errors.InternalError_):
        m._apply(other, "0009_x", "SELECT 1", as_migrator=False)
    assert other.attempts == 1


def test_set_passwords_sets_each_roles_password(settings):
    def stored(role):
        with psycopg.connect(settings.dsn) as conn:
            return conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,)).fetchone()[0]

    set_passwords(settings.dsn, {"collab_runtime": "first-secret"})
    first = stored("collab_runtime")
    set_passwords(settings.dsn, {"collab_runtime": "second-secret"})
    second = stored("collab_runtime")
    assert first and second and first != second
    assert first.startswith(("SCRAM-SHA-256$", "md5"))


def test_migration_0005_marks_the_fields_of_tasks_changed_before_it(settings, monkeypatch):
    """Tasks changed before provenance existed start with every field marked as of their last
    change; a task never changed keeps none (it reads as its creation)."""
    from collab.adapters.postgres import migrate as migrate_module

    name = f"mig_0005_{id(settings) % 10000}"
    dsn = fresh_db(settings, name)
    try:
        before = [(v, sql) for v, sql in migration_files() if v < "0005"]
        monkeypatch.setattr(migrate_module, "migration_files", lambda: before)
        migrate(dsn)
        with psycopg.connect(dsn) as conn:
            conn.execute("INSERT INTO users (id) VALUES ('ann'), ('bob')")
            conn.execute(
                "INSERT INTO tasks (id, title, created_by, updated_by, version, updated_at) VALUES"
                " ('00000000-0000-0000-0000-000000000001', 'changed', 'ann', 'bob', 3, '2026-01-02T03:04:05Z'),"
                " ('00000000-0000-0000-0000-000000000002', 'new', 'ann', 'ann', 1, now())"
            )
        monkeypatch.undo()
        assert "0005_collaboration" in migrate(dsn)
        with psycopg.connect(dsn) as conn:
            rows = dict(conn.execute("SELECT title, fields FROM tasks").fetchall())
        assert rows["new"] == {}
        assert set(rows["changed"]) == {
            "title",
            "description",
            "status",
            "priority",
            "due_date",
            "assigned_to",
        }
        mark = rows["changed"]["status"]
        assert mark["by"] == "bob" and mark["version"] == 3 and mark["at"].startswith("2026-01-02T03:04:05")
    finally:
        drop_db(settings, name)
