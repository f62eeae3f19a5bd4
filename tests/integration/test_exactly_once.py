"""Exactly-once that survives Redis (issue 13): the request ledger in Postgres, single-use tickets.

Redis loss is a FLUSHDB of the test's own Redis database (each test process has its own index):
what a failover with asynchronous replication, an eviction or a restart leaves behind.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest


def _flush_redis(world: Any) -> None:
    world.rt.store.r.flushdb()
    world.rt.connections.clear()  # a cold container: nothing cached either


def _activity_count(world: Any, wid: str) -> int:
    return int(
        world.rt.db.run(
            lambda cur: cur.execute(
                "SELECT count(*) AS n FROM activity WHERE workspace_id = %s", (wid,)
            ).fetchone()
        )["n"]
    )


def test_a_retried_edit_after_redis_lost_its_state_is_not_applied_again(world):
    """A updates the title, B updates it later, Redis is flushed, A's client reconnects and sends its
    unanswered frame again: it gets the first answer, and B's title stands."""
    wid = world.workspace("ann", "bob")
    a, b = world.connect("ann", wid), world.connect("bob", wid)
    task = a.create("first")["data"]["task"]
    frame = {
        "action": "task.update",
        "request_id": str(uuid.uuid4()),
        "task_id": task["id"],
        "changes": {"title": "A"},
    }
    first = a.send(frame)
    assert first["data"]["ok"] is True
    assert b.update(task["id"], title="B")["data"]["ok"] is True
    _flush_redis(world)
    a2 = world.connect("ann", wid)  # a new connection, a fresh ticket
    again = a2.send(frame)
    assert again["data"] == first["data"]  # the first answer, byte for byte in its data
    row = world.rt.db.run(
        lambda cur: cur.execute("SELECT title FROM tasks WHERE id = %s", (task["id"],)).fetchone()
    )
    assert row["title"] == "B"
    assert _activity_count(world, wid) == 3  # create, A, B: the retry committed nothing


def test_redis_keeps_an_answer_for_minutes_and_a_later_retry_is_answered_by_the_ledger(world):
    """Redis holds each answer only as the fast path for retries after a reconnect (minutes, not the
    contract's hour: at 100 edits/s an hour of full acks is ~230 MB of Redis). Once that copy has
    expired, the same frame from a new connection is answered by the ledger in Postgres: the first
    answer, and nothing applied again."""
    from collab.adapters.redis import keys
    from collab.adapters.redis.store import REQUEST_TTL_S

    wid = world.workspace("ann", "bob")
    a = world.connect("ann", wid)
    task = a.create("first")["data"]["task"]
    frame = {"action": "task.update", "request_id": str(uuid.uuid4()), "task_id": task["id"], "changes": {"title": "A"}}  # fmt: skip
    first = a.send(frame)
    assert first["data"]["ok"] is True
    key = keys.user("ann", f"req:{frame['request_id']}")
    ttl = world.rt.store.r.ttl(key)
    assert 0 < ttl <= REQUEST_TTL_S <= 900  # bounded: Redis memory levels off after minutes
    world.rt.store.r.delete(key)  # the copy expired
    again = world.connect("ann", wid).send(frame)
    assert again["data"] == first["data"]
    assert _activity_count(world, wid) == 2  # create, A: the retry committed nothing


def test_a_retry_after_an_unknown_commit_outcome_gets_the_first_answer(world, monkeypatch):
    """The COMMIT went through but the connection broke before its answer (the outcome is unknown to
    the server: ``Unavailable``); the client retries the same request_id and nothing applies twice."""
    wid = world.workspace("ann")
    a = world.connect("ann", wid)
    task = a.create("first")["data"]["task"]
    real_commit = psycopg.Connection.commit
    broke = []

    def commit_then_break(self: Any) -> None:
        real_commit(self)
        if not broke:
            broke.append(1)
            raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(psycopg.Connection, "commit", commit_then_break)
    frame = {
        "action": "task.update",
        "request_id": str(uuid.uuid4()),
        "task_id": task["id"],
        "changes": {"title": "once"},
    }
    lost = a.send(frame)
    assert lost["data"]["ok"] is False and lost["data"]["error"]["code"] == "internal"
    retry = a.send(frame)
    assert retry["data"]["ok"] is True and retry["data"]["task"]["version"] == 2
    assert _activity_count(world, wid) == 2  # create + one update
    assert a.send(frame)["data"] == retry["data"]


def test_a_refused_request_stays_refused_after_redis_loss(world):
    """A create refused (assignee not a member) and retried after Redis loss, once the assignee has
    joined, gets its first answer: it does not apply late."""
    wid = world.workspace("ann")
    world.user("cat")
    a = world.connect("ann", wid)
    frame = {
        "action": "task.create",
        "request_id": str(uuid.uuid4()),
        "task": {"title": "x", "assigned_to": "cat"},
    }
    first = a.send(frame)
    assert first["data"]["ok"] is False and first["data"]["error"]["code"] == "conflict"  # not a member
    world.rt.db.run(
        lambda cur: cur.execute(
            "INSERT INTO workspace_members (workspace_id, user_id, role) VALUES (%s, 'cat', 'member')", (wid,)
        )
    )
    _flush_redis(world)
    again = world.connect("ann", wid).send(frame)
    assert again["data"] == first["data"]
    assert _activity_count(world, wid) == 0


def _forget_ticket(world: Any, ticket: str) -> None:
    """Redis loses its record of a used ticket (a failover without that write, say)."""
    from collab.adapters.redis import keys
    from collab.auth.tokens import verify_ticket

    assert world.rt.store.r.delete(keys.ticket(verify_ticket(ticket, world.rt.settings).jti)) == 1


def test_a_ticket_admits_one_connection_even_after_redis_lost_its_state(world):
    """After Redis lost the record of a used ticket, $connect (Redis alone) accepts it again; the new
    connection's first frame finds the ticket spent in Postgres and is refused: it receives nothing
    and changes nothing, and the connection admitted first carries on."""
    wid = world.workspace("ann", "bob")
    ticket = world.ticket("bob", wid)
    assert world.connect_raw(ticket, "first00000001=")["statusCode"] == 200
    first = world.attach("first00000001=", "bob", wid)
    assert first.send({"action": "sync", "since": None})["type"] == "sync"
    _forget_ticket(world, ticket)
    assert world.connect_raw(ticket, "replay0000001=")["statusCode"] == 200
    replay = world.attach("replay0000001=", "bob", wid)
    frame = {"action": "task.create", "request_id": str(uuid.uuid4()), "task": {"title": "replayed"}}
    out = replay.send(frame)
    assert out["type"] == "error" and out["data"]["code"] == "unauthorized"
    assert out["data"]["message"] == "ticket already used"
    assert world.rt.store.connection("replay0000001=") is None
    assert "replay0000001=" in world.sink.deleted
    assert _activity_count(world, wid) == 0
    assert first.create("still here")["data"]["ok"] is True


def test_of_two_connections_opened_with_one_ticket_only_the_first_admitted_is_served(world):
    """Redis lost the ticket's record before either connection sent a frame: whichever frame comes
    first is admitted, the other connection is refused."""
    wid = world.workspace("ann", "bob")
    ticket = world.ticket("bob", wid)
    assert world.connect_raw(ticket, "early00000001=")["statusCode"] == 200
    _forget_ticket(world, ticket)
    assert world.connect_raw(ticket, "late000000001=")["statusCode"] == 200
    late, early = world.attach("late000000001=", "bob", wid), world.attach("early00000001=", "bob", wid)
    assert late.send({"action": "sync", "since": None})["type"] == "sync"
    out = early.send({"action": "sync", "since": None})
    assert out["type"] == "error" and out["data"]["message"] == "ticket already used"
    assert world.rt.store.workspace_connections(wid) == {"late000000001=": "bob"}


def test_expired_used_tickets_are_pruned(world):
    wid = world.workspace("ann", "bob")
    world.connect("bob", wid)  # admitted by its first frame: its ticket is recorded
    world.rt.db.run(
        lambda cur: cur.execute(
            "INSERT INTO used_tickets (jti, expires_at) VALUES ('expired-ticket-0001', now() - interval '1 minute')"
        )
    )
    pruned = world.sweep()["pruned"]
    assert pruned["used_tickets"] == 1
    left = world.rt.db.run(lambda cur: cur.execute("SELECT count(*) AS n FROM used_tickets").fetchone())
    assert left["n"] == 1  # the live ticket's record stays until it expires


# -- HTTP: Idempotency-Key -------------------------------------------------------------------
def test_http_idempotency_key_replays_the_first_answer_and_changes_nothing(api, wid):
    path = f"/workspaces/{wid}/tasks"
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = api.call("POST", path, "alice", {"title": "once"}, headers=key)
    assert first.status == 201 and "idempotent-replayed" not in first.headers
    again = api.call("POST", path, "alice", {"title": "once"}, headers=key)
    assert again.status == 201 and again.body == first.body
    assert again.headers["idempotent-replayed"] == "true"
    items = api.ok("GET", path, "alice")["items"]
    assert [t["title"] for t in items] == ["once"]
    # the same key with another request: refused, never replayed
    other = api.call("POST", path, "alice", {"title": "twice"}, headers=key)
    assert other.status == 409 and other.error["field"] == "Idempotency-Key"
    assert other.error["message"] == "this idempotency key was used for a different request"
    # keys are per user: bob's same key is his own request
    assert api.call("POST", path, "bob", {"title": "bob's"}, headers=key).status == 201


def test_http_update_with_idempotency_key_after_a_later_change_does_not_overwrite_it(api, wid):
    task = api.ok("POST", f"/workspaces/{wid}/tasks", "alice", {"title": "t"})
    key = {"Idempotency-Key": "retry-me"}
    first = api.call("PATCH", f"/tasks/{task['id']}", "alice", {"title": "A"}, headers=key)
    assert first.status == 200
    api.ok("PATCH", f"/tasks/{task['id']}", "bob", {"title": "B"})
    again = api.call("PATCH", f"/tasks/{task['id']}", "alice", {"title": "A"}, headers=key)
    assert again.status == 200 and again.body == first.body
    assert api.ok("GET", f"/tasks/{task['id']}", "alice")["title"] == "B"


def test_http_refusal_with_idempotency_key_is_replayed(api, wid):
    key = {"Idempotency-Key": str(uuid.uuid4())}
    missing = f"/tasks/{uuid.uuid4()}"
    first = api.call("PATCH", missing, "alice", {"title": "x"}, headers=key)
    assert first.status == 404
    again = api.call("PATCH", missing, "alice", {"title": "x"}, headers=key)
    assert again.status == 404 and again.body == first.body and again.headers["idempotent-replayed"] == "true"


def test_the_openapi_document_declares_the_idempotency_key():
    from collab_dev.openapi_export import openapi_document

    doc = openapi_document()
    op = doc["paths"]["/workspaces/{workspace_id}/tasks"]["post"]
    names = [p["name"] for p in op.get("parameters", []) if p.get("in") == "header"]
    assert "idempotency-key" in [n.lower() for n in names]
    assert "429" in op["responses"]


# -- retention ---------------------------------------------------------------------------------
def test_activity_notifications_and_ledger_rows_past_retention_are_pruned_by_the_sweeper(world):
    wid = world.workspace("ann", "bob")
    a = world.connect("ann", wid)
    recent = a.create("recent", assigned_to="bob")["data"]  # one activity row, one notification

    def age(cur: Any) -> None:
        cur.execute(
            "INSERT INTO activity (workspace_id, seq, actor_id, type, payload, created_at)"
            " VALUES (%s, 1000, 'ann', 'task.updated', '{}', now() - interval '91 days')",
            (wid,),
        )
        cur.execute(
            "INSERT INTO notifications (user_id, type, workspace_id, actor_id, created_at)"
            " VALUES ('bob', 'task.changed', %s, 'ann', now() - interval '91 days')",
            (wid,),
        )
        cur.execute(
            "INSERT INTO request_ledger (user_id, request_key, answer, created_at)"
            " VALUES ('ann', 'ws:old', '{}', now() - interval '25 hours')"
        )

    world.rt.db.run(age)
    pruned = world.sweep()["pruned"]
    assert (pruned["activity"], pruned["notifications"], pruned["request_ledger"]) == (1, 1, 1)
    seqs = world.rt.db.run(lambda cur: cur.execute("SELECT seq FROM activity").fetchall())
    assert [r["seq"] for r in seqs] == [recent["seq"]]
    left = world.rt.db.run(lambda cur: cur.execute("SELECT count(*) AS n FROM notifications").fetchone())
    assert left["n"] == 1


def test_the_indexes_pruning_and_workspace_deletion_need_exist(world):
    names = world.rt.db.run(lambda cur: cur.execute("SELECT indexname FROM pg_indexes").fetchall())
    have = {r["indexname"] for r in names}
    assert {
        "activity_created_idx",
        "notifications_created_idx",
        "notifications_workspace_idx",
        "tasks_workspace_all_idx",
    } <= have


@pytest.mark.parametrize("status", [500, 503])
def test_a_server_error_is_never_recorded_so_a_retry_runs_again(world, status):
    """4xx answers are the request's for good; 5xx (an internal error, a database away) are not:
    nothing reaches the ledger and the same key runs the request again."""
    from collab.domain import ledger
    from collab.errors import CollabError

    class ServerError(CollabError):
        pass

    ServerError.status = status
    world.user("ann")
    entry = ledger.Entry("ann", f"key-{status}")
    refused = lambda exc: ledger.Answer(exc.status, exc.message)  # noqa: E731

    def failing(db):
        return db.run(lambda cur: (_ for _ in ()).throw(ServerError("down")))

    with pytest.raises(ServerError):
        ledger.execute(world.rt.db, entry, failing, lambda r: ledger.Answer(200, "{}"), refused)
    rows = world.rt.db.run(
        lambda cur: cur.execute(
            "SELECT count(*) AS n FROM request_ledger WHERE request_key = %s", (entry.key,)
        ).fetchone()["n"]
    )
    assert rows == 0
    result, answer = ledger.execute(world.rt.db, entry, lambda db: db.run(lambda cur: "done"),
                                    lambda r: ledger.Answer(200, r), refused)  # fmt: skip
    assert (result, answer) == ("done", ledger.Answer(200, "done"))


def test_pruning_goes_batch_by_batch_counts_every_row_and_stops_at_its_cap(world):
    from collab.domain import retention

    world.user("ann")

    def old_notes(n):
        world.rt.db.run(
            lambda cur: cur.executemany(
                "INSERT INTO notifications (user_id, type, created_at) VALUES ('ann', 'x', now() - interval '100 days')",
                [()] * n,
            )
        )

    limits = world.rt.settings.limits
    old_notes(4)  # two full batches, then an empty one ends the table
    assert retention.prune(world.rt.db, limits, batch=2, max_batches=5)["notifications"] == 4
    old_notes(5)  # 2 + 2 + 1
    assert retention.prune(world.rt.db, limits, batch=2, max_batches=5)["notifications"] == 5
    old_notes(7)  # three batches at most in one run: one row waits for the next
    assert retention.prune(world.rt.db, limits, batch=2, max_batches=3)["notifications"] == 6
    assert retention.prune(world.rt.db, limits, batch=2, max_batches=3)["notifications"] == 1
