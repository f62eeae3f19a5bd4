"""Task mutations over the WebSocket: ack to the actor, the event to everyone else, seq, replay."""

import json
import uuid

import pytest


def db_snapshot(rt):
    def tx(cur):
        out = {}
        for t in ("tasks", "activity", "notifications", "workspaces"):
            out[t] = cur.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
        return out

    return rt.db.run(tx)


def redis_snapshot(rt):
    r = rt.store.r
    out = {}
    for k in sorted(r.keys("*")):
        t = r.type(k).decode()
        if t == "hash":
            out[k] = r.hgetall(k)
        elif t == "zset":
            out[k] = r.zrange(k, 0, -1, withscores=True)
        elif t == "set":
            out[k] = r.smembers(k)
        else:
            out[k] = r.get(k)
    return out


def test_create_acks_the_actor_and_fans_out_to_peers(world):
    wid = world.workspace("ann", "bob", "cat")
    a, b, c = world.connect("ann", wid), world.connect("bob", wid), world.connect("cat", wid)
    reply = a.create("Write the spec", priority="high")
    assert reply["type"] == "ack" and reply["data"]["ok"] is True
    task, seq = reply["data"]["task"], reply["data"]["seq"]
    assert task["version"] == 1 and seq == 1 and task["priority"] == "high" and task["created_by"] == "ann"
    for peer in (b, c):
        (ev,) = peer.received("task.created")
        assert ev["seq"] == seq and ev["data"]["task"] == task
        assert ev["user_id"] == "ann" and ev["workspace_id"] == wid and ev["timestamp"].endswith("Z")
    assert a.received("task.created") == []


def test_update_patches_only_the_fields_sent_and_delete_is_a_tombstone(world):
    wid = world.workspace("ann", "bob")
    a, b = world.connect("ann", wid), world.connect("bob", wid)
    t = a.create("Title", description="keep me")["data"]["task"]
    up = b.update(t["id"], status="in_progress")["data"]
    assert up["task"]["status"] == "in_progress" and up["task"]["description"] == "keep me"
    assert up["task"]["version"] == 2 and up["seq"] == 2 and up["task"]["updated_by"] == "bob"
    d = a.send({"action": "task.delete", "request_id": str(uuid.uuid4()), "task_id": t["id"]})["data"]
    assert d["task"]["deleted"] is True and d["task"]["version"] == 3 and d["seq"] == 3
    (ev,) = b.received("task.deleted")
    assert ev["data"]["task"]["version"] == 3
    again = a.update(t["id"], title="zombie")["data"]
    assert again["ok"] is False and again["error"]["code"] == "not_found"


def test_repeated_request_id_returns_the_same_ack_and_adds_no_seq(world):
    wid = world.workspace("ann", "bob")
    a, b = world.connect("ann", wid), world.connect("bob", wid)
    rid = str(uuid.uuid4())
    frame = {"action": "task.create", "request_id": rid, "task": {"title": "once"}}
    first = a.send(frame)["data"]
    second = a.send(frame)["data"]
    assert first == second
    last_seq = world.rt.db.run(
        lambda cur: cur.execute("SELECT last_seq FROM workspaces WHERE id = %s", (wid,)).fetchone()[
            "last_seq"
        ]
    )
    assert last_seq == 1 and len(b.received("task.created")) == 1
    # the same request_id from another connection of the same user: still the first answer
    a2 = world.connect("ann", wid)
    assert a2.send(frame)["data"] == first


def test_the_101st_frame_in_a_minute_is_refused(world):
    wid = world.workspace("ann", "bob")
    a = world.connect("ann", wid, sync=False)
    a2 = world.connect("ann", wid, sync=False)  # the limit is per user, across connections
    replies = []
    for i in range(101):
        conn = a if i % 2 else a2
        replies.append(conn.send({"action": "presence.update", "status": "active", "viewing": None}))
    assert all(r is None for r in replies[:100])
    assert replies[100]["type"] == "error" and replies[100]["data"]["code"] == "rate_limited"
    assert replies[100]["data"]["retry_after_ms"] > 0
    refused = a.create("over the limit")["data"]
    assert refused["ok"] is False and refused["error"]["code"] == "rate_limited"
    assert world.rt.db.run(lambda cur: cur.execute("SELECT count(*) AS n FROM tasks").fetchone()["n"]) == 0
    a.heartbeat()  # heartbeats are not counted, and still answered
    assert a.heartbeat()["type"] == "heartbeat.ack"
    world.rt.clock.advance(60)
    assert a.create("a minute later")["data"]["ok"] is True


def test_sync_replays_150_events_in_order_the_oldest_50_from_postgres(world, monkeypatch):
    from collab.domain import events, tasks
    from collab.protocol.client_frames import TaskDraft

    wid = world.workspace("ann", "bob")
    b = world.connect("bob", wid)
    gw = world.rt.gateway_for(None)
    for i in range(150):
        m = tasks.create(world.rt.db, "ann", TaskDraft(title=f"t{i}"), workspace_id=wid)
        events.publish(world.rt, m.committed, gw)
    assert [s for s, _ in world.rt.store.history(wid, 0)] == list(range(51, 151))
    from_db = []
    real = events.activity_frame
    monkeypatch.setattr(
        "collab.domain.sync.activity_frame", lambda row: from_db.append(row["seq"]) or real(row)
    )
    data = b.send({"action": "sync", "since": 0})["data"]
    assert [e["seq"] for e in data["events"]] == list(range(1, 151))
    assert from_db == list(range(1, 51))
    assert data["seq"] == 150 and data["resync"] is False
    assert [e["data"]["task"]["title"] for e in data["events"]][:3] == ["t0", "t1", "t2"]
    # nothing newer: empty; a seq the workspace never reached: resync
    assert b.send({"action": "sync", "since": 150})["data"]["events"] == []
    far = b.send({"action": "sync", "since": 999})["data"]
    assert far["resync"] is True and far["events"] == [] and far["seq"] == 150


def test_sync_fills_holes_in_redis_from_postgres(world):
    from collab.adapters.redis import keys

    wid = world.workspace("ann", "bob")
    a, b = world.connect("ann", wid), world.connect("bob", wid)
    for i in range(5):
        a.create(f"t{i}")
    world.rt.store.r.zremrangebyscore(keys.ws(wid, "history"), 3, 3)  # as if seq 3 never reached Redis
    data = b.send({"action": "sync", "since": 1})["data"]
    assert [e["seq"] for e in data["events"]] == [2, 3, 4, 5]


def test_a_gone_connection_is_pruned_and_not_tried_again(world):
    wid = world.workspace("ann", "bob", "cat")
    a, b, c = world.connect("ann", wid), world.connect("bob", wid), world.connect("cat", wid)
    world.sink.gone.add(b.cid)
    a.create("first")
    assert b.cid not in world.rt.store.workspace_connections(wid)
    assert world.rt.store.connection(b.cid) is None
    attempts_before = world.sink.attempts.count(b.cid)
    a.create("second")
    assert world.sink.attempts.count(b.cid) == attempts_before
    assert len(c.received("task.created")) == 2


def test_throttled_posts_are_retried(world):
    wid = world.workspace("ann", "bob")
    a, b = world.connect("ann", wid), world.connect("bob", wid)
    world.sink.throttle = 2
    a.create("through throttling")
    assert len(b.received("task.created")) == 1


@pytest.mark.parametrize(
    ("body", "kind", "code", "field"),
    [
        ("not json", "error", "validation_error", None),
        ("[1, 2]", "error", "validation_error", None),
        ('{"action": "task.explode"}', "error", "validation_error", None),
        ('{"no_action": 1}', "error", "validation_error", None),
        (
            '{"action": "task.create", "request_id": "00000000-0000-4000-8000-000000000001", "task": {"title": ""}}',
            "ack",
            "validation_error",
            "task.title",
        ),
        (
            '{"action": "task.create", "request_id": "00000000-0000-4000-8000-000000000002", "task": {"title": "a\\u0000b"}}',
            "ack",
            "validation_error",
            "task.title",
        ),
        (
            '{"action": "task.create", "request_id": "00000000-0000-4000-8000-000000000009", "task": {"title": "a\\u0085b"}}',
            "ack",
            "validation_error",
            "task.title",
        ),
        (
            '{"action": "task.create", "request_id": "00000000-0000-4000-8000-000000000003", "task": {"title": "x", "status": "doing"}}',
            "ack",
            "validation_error",
            "task.status",
        ),
        (
            '{"action": "task.update", "request_id": "00000000-0000-4000-8000-000000000004", "task_id": "nope", "changes": {}}',
            "ack",
            "validation_error",
            "task_id",
        ),
        (
            '{"action": "task.update", "request_id": "00000000-0000-4000-8000-000000000005", "task_id": "00000000-0000-4000-8000-000000000005", "changes": {"version": 9}}',
            "ack",
            "validation_error",
            "changes.version",
        ),
        (
            '{"action": "task.create", "task": {"title": "no request id"}}',
            "ack",
            "validation_error",
            "request_id",
        ),
        ('{"action": "sync", "since": -1}', "error", "validation_error", "since"),
        ('{"action": "presence.update", "status": "sleeping"}', "error", "validation_error", "status"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(world, body, kind, code, field):
    wid = world.workspace("ann", "bob")
    a = world.connect("ann", wid)
    a.create("existing")
    before_db, before_redis = db_snapshot(world.rt), redis_snapshot(world.rt)
    reply = a.send_raw(body)
    assert reply["type"] == kind
    err = reply["data"] if kind == "error" else reply["data"]["error"]
    assert err["code"] == code
    if field:
        assert err["field"] == field and field in err["message"]
    assert db_snapshot(world.rt) == before_db
    # only the user's rate window moved: every frame counts against the budget, valid or not
    after_redis = redis_snapshot(world.rt)
    window = b"collab:{u:ann}:rl"
    assert len(after_redis.pop(window)) == len(before_redis.pop(window)) + 1
    assert after_redis == before_redis


def test_oversized_frames_are_refused(world):
    wid = world.workspace("ann")
    a = world.connect("ann", wid)
    rid = str(uuid.uuid4())
    big = json.dumps(
        {"action": "task.create", "request_id": rid, "task": {"title": "x", "description": "y" * 40000}}
    )
    reply = a.send_raw(big)
    assert reply["data"]["ok"] is False and reply["data"]["error"]["code"] == "payload_too_large"
    assert reply["data"]["request_id"] == rid
    assert a.send_raw("z" * 40000)["data"]["code"] == "payload_too_large"


def test_a_removed_member_is_refused_before_the_connection_closes(world):
    wid = world.workspace("ann", "bob")
    a, b = world.connect("ann", wid), world.connect("bob", wid)
    t = a.create("shared")["data"]["task"]
    world.remove_member(wid, "bob")
    for reply in (b.create("sneaky"), b.update(t["id"], title="hijacked")):
        assert reply["data"]["ok"] is False and reply["data"]["error"]["code"] == "forbidden"
    assert a.update(t["id"], title="still mine")["data"]["task"]["title"] == "still mine"
    reply = b.send({"action": "sync", "since": 0})
    assert reply["data"]["code"] == "forbidden" and b.cid in world.sink.deleted


def test_base_version_refuses_a_stale_write_with_the_current_task(world):
    wid = world.workspace("ann", "bob")
    a, b = world.connect("ann", wid), world.connect("bob", wid)
    t = a.create("v1")["data"]["task"]
    b.update(t["id"], title="v2")
    reply = a.send(
        {
            "action": "task.update",
            "request_id": str(uuid.uuid4()),
            "task_id": t["id"],
            "changes": {"title": "stale"},
            "base_version": 1,
        }
    )["data"]
    assert reply["ok"] is False and reply["error"]["code"] == "conflict"
    assert reply["error"]["task"]["title"] == "v2" and reply["error"]["task"]["version"] == 2


def test_assignee_must_be_a_member(world):
    wid = world.workspace("ann", "bob")
    world.user("stranger")
    a = world.connect("ann", wid)
    reply = a.create("x", assigned_to="stranger")["data"]
    assert reply["error"]["code"] == "conflict" and reply["error"]["field"] == "assigned_to"


def test_a_connection_still_in_connect_is_not_pruned_by_a_peers_fanout(world):
    """API Gateway answers 410 to posts to a connection whose $connect has not returned. A fan-out
    in that window must not take it for dead: it becomes a target only at its first sync."""
    wid = world.workspace("ann", "bob")
    a = world.connect("ann", wid)
    b = world.connect("bob", wid, sync=False)  # registered; its $connect "has not returned"
    world.sink.gone.add(b.cid)  # what API Gateway would answer to a post now
    a.create("while bob connects")
    assert b.cid not in world.sink.attempts  # not even tried
    world.sink.gone.discard(b.cid)  # $connect returned; bob's first frame is sync
    reply = b.send({"action": "sync", "since": 0})
    assert [e["data"]["task"]["title"] for e in reply["data"]["events"]] == ["while bob connects"]
    a.create("after bob synced")
    assert [f["data"]["task"]["title"] for f in b.received("task.created")] == ["after bob synced"]
