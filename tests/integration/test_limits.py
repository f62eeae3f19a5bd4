"""Limits that hold under abuse (issue 13): every frame counts, heartbeats have their own budget,
live connections are capped, HTTP writes and workspaces per user are limited."""

from __future__ import annotations

import json
import uuid

from collab.config import Limits

LIMITS = Limits()


def test_garbage_frames_count_against_the_budget(world):
    """100 frames of garbage, then a valid edit, all in one minute: the edit is refused."""
    wid = world.workspace("ann")
    a = world.connect("ann", wid)  # its sync is the first frame of the minute
    for i in range(LIMITS.frames_per_minute - 1):
        reply = a.send_raw("not json" if i % 2 else '{"action": "task.explode"}')
        assert reply["data"]["code"] == "validation_error"
    frame = {"action": "task.create", "request_id": str(uuid.uuid4()), "task": {"title": "late"}}
    reply = a.send(frame)
    assert reply["data"]["ok"] is False
    assert reply["data"]["error"]["code"] == "rate_limited" and reply["data"]["error"]["retry_after_ms"] > 0
    count = world.rt.db.run(lambda cur: cur.execute("SELECT count(*) AS n FROM tasks").fetchone())
    assert count["n"] == 0


def test_a_client_that_keeps_sending_over_budget_is_disconnected(world):
    wid = world.workspace("ann")
    a = world.connect("ann", wid)
    for _ in range(LIMITS.frames_per_minute - 1):
        a.send_raw("garbage")
    assert a.cid not in world.sink.deleted
    for _ in range(LIMITS.refusals_before_close + 1):
        reply = a.send_raw("garbage")
        assert reply["data"]["code"] == "rate_limited"
    assert a.cid in world.sink.deleted
    assert world.rt.store.connection(a.cid) is None


def test_heartbeats_have_their_own_small_budget(world):
    wid = world.workspace("ann")
    a = world.connect("ann", wid)
    for _ in range(LIMITS.heartbeats_per_minute):
        assert a.heartbeat()["type"] == "heartbeat.ack"
    over = a.heartbeat()
    assert over["type"] == "error" and over["data"]["code"] == "rate_limited"
    world.rt.clock.advance(61)
    assert a.heartbeat()["type"] == "heartbeat.ack"


def test_live_connections_are_capped_per_user_per_workspace(world):
    wid = world.workspace("ann", "bob")
    for _ in range(LIMITS.connections_per_user_workspace):
        world.connect("bob", wid, sync=False)
    out = world.connect_raw(world.ticket("bob", wid))
    assert out["statusCode"] == 429 and json.loads(out["body"])["error"]["code"] == "rate_limited"
    # another user of the workspace is not affected
    assert world.connect_raw(world.ticket("ann", wid))["statusCode"] == 200
    # nothing of the refused connection is left behind
    conns = world.rt.store.workspace_connections(wid)
    assert list(conns.values()).count("bob") == LIMITS.connections_per_user_workspace


def test_live_connections_are_capped_per_workspace(world, monkeypatch):
    from collab.config import Limits as L

    wid = world.workspace("ann", "bob", "cat")
    small = world.rt.settings.model_copy(update={"limits": L(connections_per_workspace=3)})
    monkeypatch.setattr(world.rt, "settings", small)
    for uid in ("ann", "bob", "cat"):
        world.connect(uid, wid, sync=False)
    assert world.connect_raw(world.ticket("ann", wid))["statusCode"] == 429


def test_http_writes_are_limited_per_user(api, wid):
    for i in range(LIMITS.http_writes_per_minute - 2):  # the fixture's setup wrote twice as alice
        api.ok("PATCH", f"/workspaces/{wid}", "alice", {"name": f"n{i}"})
    over = api.call("PATCH", f"/workspaces/{wid}", "alice", {"name": "over"})
    assert (
        over.status == 429 and over.error["code"] == "rate_limited" and int(over.headers["retry-after"]) >= 1
    )
    # reads are not writes, and bob has his own budget
    assert api.call("GET", f"/workspaces/{wid}", "alice").status == 200
    assert api.call("POST", f"/workspaces/{wid}/tasks", "bob", {"title": "mine"}).status == 201


def test_workspaces_per_user_are_capped(api, rt):
    api.ok("GET", "/workspaces", "olga")
    rt.db.run(
        lambda cur: cur.execute(
            "WITH w AS (INSERT INTO workspaces (name, created_by) SELECT 'w' || g, 'olga'"
            " FROM generate_series(1, %s) g RETURNING id)"
            " INSERT INTO workspace_members (workspace_id, user_id, role) SELECT id, 'olga', 'owner' FROM w",
            (LIMITS.workspaces_per_user,),
        )
    )
    over = api.call("POST", "/workspaces", "olga", {"name": "one more"})
    assert over.status == 409
    assert over.error["message"] == f"a user owns at most {LIMITS.workspaces_per_user} workspaces"
    assert api.call("POST", "/workspaces", "pete", {"name": "his first"}).status == 201


def test_limits_come_from_the_environment():
    from collab.config import load_settings

    s = load_settings(
        {
            "DATABASE_URL": "postgresql://x/y",
            "REDIS_URL": "redis://r",
            "JWT_SECRET": "s" * 32,
            "LIMIT_FRAMES_PER_MINUTE": "7",
        }
    )
    assert s.limits.frames_per_minute == 7 and s.limits.connections_per_workspace == 500
