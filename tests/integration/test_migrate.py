import threading
import time

import psycopg

from collab.adapters.postgres.migrate import migrate, migration_files
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


def test_a_role_changed_from_another_database_meanwhile_does_not_fail_the_migration(settings):
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
        result, errors = [], []
        runner = threading.Thread(target=lambda: _run(migrate, dsn, result, errors))
        runner.start()
        deadline = time.monotonic() + 60  # generous: only the wait below is awaited
        with psycopg.connect(settings.dsn, autocommit=True) as watch:
            while time.monotonic() < deadline:
                waiting = watch.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
                    " AND wait_event_type = 'Lock' AND query LIKE '-- runs as: admin%%'",
                    (name,),
                ).fetchone()[0]
                if waiting:
                    break
                time.sleep(0.02)
            else:
                raise AssertionError("the migration never reached the role held by the other database")
        other.commit()
        runner.join(60)
        assert errors == []
        assert result == [[v for v, _ in migration_files()]]
        with psycopg.connect(dsn) as conn:
            applied = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0]
        assert applied == len(migration_files())
    finally:
        other.close()
        drop_db(settings, name)


def _run(fn, dsn, result, errors):
    try:
        result.append(fn(dsn))
    except Exception as exc:
        errors.append(exc)


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
