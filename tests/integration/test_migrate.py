import threading

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
