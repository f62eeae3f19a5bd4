import threading
import uuid

import psycopg
import pytest

from collab.adapters.postgres.database import Database
from collab.errors import Conflict, Unavailable, ValidationError


def make_workspace(db, owner="owner"):
    def tx(cur):
        cur.execute("INSERT INTO users (id) VALUES (%s) ON CONFLICT DO NOTHING", (owner,))
        cur.execute("INSERT INTO workspaces (name, created_by) VALUES ('w', %s) RETURNING id", (owner,))
        return cur.fetchone()["id"]

    return db.run(tx)


def _pid(db):
    return db.run(lambda cur: cur.execute("SELECT pg_backend_pid() AS p").fetchone()["p"])


def _terminate(settings, pid):
    with psycopg.connect(settings.dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def _users(db):
    return db.run(lambda cur: cur.execute("SELECT count(*) AS n FROM users").fetchone()["n"])


def _task_sql(wid, assignee="owner"):
    return (
        "INSERT INTO tasks (workspace_id, title, created_by, updated_by, assigned_to) VALUES (%s, 't', 'owner', 'owner', %s)",
        (wid, assignee),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("statement", "error", "message", "field"),
    [
        # a duplicate primary key
        (lambda wid: ("INSERT INTO users (id) VALUES ('owner')", ()), Conflict, "already exists", None),
        # a foreign key naming the assignee, and another one
        (lambda wid: _task_sql(wid, "nobody"), ValidationError, "assigned_to: unknown user", "assigned_to"),
        (lambda wid: _task_sql(str(uuid.uuid4())), ValidationError, "refers to something that does not exist", None),
        # the member cap's CHECK, and another CHECK (its constraint named in the message)
        (lambda wid: ("UPDATE workspaces SET member_count = 5000 WHERE id = %s", (wid,)), Conflict,
         "a workspace has at most 1000 members", None),
        (lambda wid: ("UPDATE workspaces SET last_seq = -1 WHERE id = %s", (wid,)), ValidationError,
         "invalid value (workspaces_last_seq_check)", None),
    ],
)  # fmt: skip
def test_constraint_violations_come_out_as_the_client_errors_they_mean(
    settings, clean, statement, error, message, field
):
    db = Database(settings.dsn)
    wid = make_workspace(db)
    sql, args = statement(wid)
    with pytest.raises(error) as caught:
        db.run(lambda cur: cur.execute(sql, args))
    assert type(caught.value) is error
    assert caught.value.to_wire() == {
        "code": error.code,
        "message": message,
        **({"field": field} if field else {}),
    }
    with pytest.raises(psycopg.errors.NotNullViolation):  # not one we expect: raised as it is
        db.run(lambda cur: cur.execute("INSERT INTO users (id) VALUES (NULL)"))
    db.close()


def test_reconnects_transparently_after_the_connection_is_killed(settings, clean):
    db = Database(settings.dsn)
    pid = _pid(db)
    _terminate(settings, pid)
    assert _pid(db) != pid
    db.close()


def test_an_exception_rolls_the_whole_transaction_back(settings, clean):
    db = Database(settings.dsn)

    def tx(cur):
        cur.execute("INSERT INTO users (id) VALUES ('u1')")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        db.run(tx)
    assert _users(db) == 0
    db.close()


def _join_at_once(settings, wid, users, join_one, threads=12):
    """Every user in ``users`` joins at once, from ``threads`` connections; returns the outcomes."""
    outcomes = []
    barrier = threading.Barrier(threads)

    def join(chunk):
        local = Database(settings.dsn)
        barrier.wait()
        for u in chunk:
            try:
                join_one(local, u)
                outcomes.append("ok")
            except Conflict as exc:  # the cap, or the CHECK violation Database.run turns into it
                outcomes.append("full" if "members" in exc.message else repr(exc))
            except psycopg.Error as exc:
                outcomes.append(repr(exc))
        local.close()

    workers = [threading.Thread(target=join, args=(users[i::threads],)) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return outcomes


def _counts(db, wid):
    return db.run(
        lambda cur: cur.execute(
            "SELECT (SELECT count(*) FROM workspace_members WHERE workspace_id = %s) AS rows,"
            " (SELECT member_count FROM workspaces WHERE id = %s) AS counter",
            (wid, wid),
        ).fetchone()
    )


def test_member_ceiling_holds_under_concurrent_joins(settings, clean):
    """1,010 users inserted at once, past any setting: exactly 1,000 rows, enforced by the database
    (the member_count CHECK), not a racy count."""
    db = Database(settings.dsn)
    wid = make_workspace(db)
    users = [f"user-{i}" for i in range(1010)]
    db.run(lambda cur: cur.executemany("INSERT INTO users (id) VALUES (%s)", [(u,) for u in users]))

    def insert(local, u):
        local.run(
            lambda cur: cur.execute(
                "INSERT INTO workspace_members (workspace_id, user_id, role) VALUES (%s, %s, 'member')",
                (wid, u),
            )
        )

    outcomes = _join_at_once(settings, wid, users, insert)
    assert outcomes.count("ok") == 1000 and outcomes.count("full") == 10
    assert _counts(db, wid) == {"rows": 1000, "counter": 1000}
    db.close()


@pytest.mark.parametrize("cap", [50, 120])
def test_the_member_setting_holds_under_concurrent_adds(settings, clean, cap):
    """cap + 10 users added at once by the owner through the domain: exactly ``cap`` members (the
    count is read under the workspace row's lock), whatever the setting."""
    from collab.domain import members

    db = Database(settings.dsn)
    wid = make_workspace(db)
    db.run(
        lambda cur: cur.execute(
            "INSERT INTO workspace_members (workspace_id, user_id, role) VALUES (%s, 'owner', 'owner')",
            (wid,),
        )
    )
    users = [f"user-{i}" for i in range(cap + 9)]  # the owner is the first member
    db.run(lambda cur: cur.executemany("INSERT INTO users (id) VALUES (%s)", [(u,) for u in users]))

    def add(local, u):
        members.add_member(local, "owner", str(wid), user_id=u, cap=cap)

    outcomes = _join_at_once(settings, wid, users, add)
    assert outcomes.count("ok") == cap - 1 and outcomes.count("full") == 10
    assert _counts(db, wid) == {"rows": cap, "counter": cap}
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


# -- one connection per thread, reconnects, and when a transaction is retried ------------------------
def test_a_connection_names_itself_gives_up_connecting_after_two_seconds_and_is_reused(settings, clean):
    db = Database(settings.dsn)
    first = _pid(db)
    params = db._local.conn.info.get_parameters()
    assert (params["application_name"], params["connect_timeout"]) == ("collab", "2")
    assert _pid(db) == first  # the same connection, transaction after transaction
    assert db.transactions == 2  # each committed transaction counted
    held = db._local.conn
    db.close()
    assert db._local.conn is None and held.closed  # closed, not merely forgotten (no leaked socket)
    _pid(db)
    db._local.conn.close()  # closed without breaking: replaced before the transaction, so the
    calls = []  # transaction keeps its one retry for a connection that breaks under it

    def breaks_once(cur):
        calls.append(1)
        if len(calls) == 1:
            cur.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return "done"

    assert db.run(breaks_once) == "done" and len(calls) == 2
    assert _pid(db) != first  # closed: the next run connects again
    db.close()
    named = Database(settings.dsn, connect_timeout=5, application_name="collab-sweeper")
    params = named._connection().info.get_parameters()
    assert (params["application_name"], params["connect_timeout"]) == ("collab-sweeper", "5")
    named.close()


def test_a_dsn_given_as_a_function_is_asked_again_at_every_connect(settings, clean):
    asked = []
    db = Database(lambda: asked.append(1) or settings.dsn)
    first = _pid(db)
    _pid(db)
    assert len(asked) == 1
    _terminate(settings, first)
    assert _pid(db) != first
    assert len(asked) == 2  # the reconnect asked again (a rotated password is picked up)
    db.close()


def test_a_database_that_does_not_answer_is_unavailable():
    db = Database("postgresql://postgres@127.0.0.1:1/test", connect_timeout=1)
    with pytest.raises(Unavailable) as caught:
        db.run(lambda cur: None)
    assert caught.value.message == "database unavailable"
    assert isinstance(caught.value.__cause__, psycopg.OperationalError)


def test_a_connection_that_breaks_before_commit_is_retried_once_on_a_new_one(settings, clean):
    db = Database(settings.dsn)
    calls = []

    def kill_myself(cur):
        calls.append(cur.connection.info.backend_pid)
        cur.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    with pytest.raises(Unavailable) as caught:
        db.run(kill_myself)
    assert caught.value.message == "database unavailable"
    assert len(calls) == 2 and calls[0] != calls[1]  # once more, on a new connection, then given up
    assert db.transactions == 0
    assert _pid(db) not in calls  # the broken one was dropped
    db.close()


def test_a_commit_whose_outcome_is_unknown_is_never_retried(settings, clean):
    db = Database(settings.dsn)
    calls = []

    def killed_before_commit(cur):
        calls.append(1)
        cur.execute("INSERT INTO users (id) VALUES ('u1')")
        _terminate(settings, cur.connection.info.backend_pid)

    with pytest.raises(Unavailable):
        db.run(killed_before_commit)
    assert calls == [1]
    assert _users(db) == 0
    db.close()


def test_an_operational_error_on_a_sound_connection_rolls_back_and_keeps_it(settings, clean):
    db = Database(settings.dsn)
    pid, calls = _pid(db), []

    def too_slow(cur):
        calls.append(1)
        cur.execute("INSERT INTO users (id) VALUES ('u1')")
        cur.execute("SET LOCAL statement_timeout = 1")
        cur.execute("SELECT pg_sleep(1)")

    with pytest.raises(Unavailable) as caught:
        db.run(too_slow)
    assert isinstance(caught.value.__cause__, psycopg.errors.QueryCanceled)
    assert calls == [1]  # not retried: the connection is sound, the statement failed
    assert _pid(db) == pid
    assert _users(db) == 0
    db.close()


def test_any_other_error_on_a_broken_connection_drops_it(settings, clean):
    db = Database(settings.dsn)
    pid = _pid(db)

    def broken_then_fails(cur):
        try:
            cur.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        except psycopg.OperationalError:
            pass
        raise LookupError("the function's own error")

    with pytest.raises(LookupError):
        db.run(broken_then_fails)
    assert db._local.conn is None
    assert _pid(db) != pid
    db.close()


def test_after_an_integrity_error_the_connection_goes_on(settings, clean):
    db = Database(settings.dsn)
    make_workspace(db)
    pid = _pid(db)
    with pytest.raises(Conflict):
        db.run(lambda cur: cur.execute("INSERT INTO users (id) VALUES ('owner')"))
    assert _pid(db) == pid
    assert db.transactions == 3  # the workspace, and a pid twice: the refused insert never committed
    db.close()


def test_a_connection_the_function_closed_is_dropped_whatever_it_raises(settings, clean):
    """A connection is gone once closed, broken or not: never rolled back, which would raise over
    the function's own error, and a statement on it is retried once on a new connection."""
    db = Database(settings.dsn)

    def closes_and_fails(cur):
        cur.connection.close()
        raise LookupError("the function's own error")

    with pytest.raises(LookupError):
        db.run(closes_and_fails)
    assert db._local.conn is None
    calls = []

    def closes_then_uses(cur):
        calls.append(1)
        if len(calls) == 1:
            cur.connection.close()
        return cur.execute("SELECT 1 AS one").fetchone()["one"]

    assert db.run(closes_then_uses) == 1 and len(calls) == 2
    db.close()
