import threading
import uuid

import psycopg
import pytest

from collab.adapters.postgres.database import Database
from collab.errors import Conflict


def make_workspace(db, owner="owner"):
    def tx(cur):
        cur.execute("INSERT INTO users (id) VALUES (%s) ON CONFLICT DO NOTHING", (owner,))
        cur.execute("INSERT INTO workspaces (name, created_by) VALUES ('w', %s) RETURNING id", (owner,))
        return cur.fetchone()["id"]

    return db.run(tx)


def test_reconnects_transparently_after_the_connection_is_killed(settings, clean):
    db = Database(settings.dsn)
    pid = db.run(lambda cur: cur.execute("SELECT pg_backend_pid() AS p").fetchone()["p"])
    with psycopg.connect(settings.dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    again = db.run(lambda cur: cur.execute("SELECT pg_backend_pid() AS p").fetchone()["p"])
    assert again != pid
    db.close()


def test_an_exception_rolls_the_whole_transaction_back(settings, clean):
    db = Database(settings.dsn)

    def tx(cur):
        cur.execute("INSERT INTO users (id) VALUES ('u1')")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        db.run(tx)
    assert db.run(lambda cur: cur.execute("SELECT count(*) AS n FROM users").fetchone()["n"]) == 0
    db.close()


def test_fifty_member_cap_holds_under_concurrent_joins(settings, clean):
    """60 users join at once: exactly 50 rows, enforced by the database, not a racy count."""
    db = Database(settings.dsn)
    wid = make_workspace(db)
    users = [f"user-{i}" for i in range(60)]
    db.run(lambda cur: cur.executemany("INSERT INTO users (id) VALUES (%s)", [(u,) for u in users]))
    outcomes = []
    barrier = threading.Barrier(12)

    def join(chunk):
        local = Database(settings.dsn)
        barrier.wait()
        for u in chunk:
            try:
                local.run(
                    lambda cur, u=u: cur.execute(
                        "INSERT INTO workspace_members (workspace_id, user_id, role) VALUES (%s, %s, 'member')",
                        (wid, u),
                    )
                )
                outcomes.append("ok")
            except Conflict as exc:  # Database.run turns the CHECK violation into the client error
                outcomes.append("full" if "50 members" in exc.message else repr(exc))
            except psycopg.Error as exc:
                outcomes.append(repr(exc))
        local.close()

    threads = [threading.Thread(target=join, args=(users[i::12],)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("ok") == 50 and outcomes.count("full") == 10
    counts = db.run(
        lambda cur: cur.execute(
            "SELECT (SELECT count(*) FROM workspace_members WHERE workspace_id = %s) AS rows,"
            " (SELECT member_count FROM workspaces WHERE id = %s) AS counter",
            (wid, wid),
        ).fetchone()
    )
    assert counts == {"rows": 50, "counter": 50}
    db.close()


def test_server_side_timestamps(settings, clean):
    db = Database(settings.dsn)
    wid = make_workspace(db)
    row = db.run(
        lambda cur: cur.execute(
            "SELECT created_at, now() - created_at < interval '1 minute' AS recent FROM workspaces WHERE id = %s",
            (wid,),
        ).fetchone()
    )
    assert row["recent"] and row["created_at"].tzinfo is not None
    assert isinstance(wid, uuid.UUID)
    db.close()
