"""Presence (contract 3.5) and notifications (3.6) with a manual clock: no test sleeps for 60 s."""

import uuid


def presence_users(frames):
    return [(f["type"], f["data"]["user"]["id"]) for f in frames if f["type"].startswith("presence.")]


def test_joined_reaches_peers_on_the_first_sync_and_the_snapshot_lists_everyone(world):
    wid = world.workspace("ann", "bob")
    a = world.connect("ann", wid)
    b = world.connect("bob", wid, sync=False)
    assert presence_users(a.received()) == []  # bob has not synced yet
    reply = b.send({"action": "sync", "since": None})
    assert presence_users(a.received()) == [("presence.joined", "bob")]
    joined = a.received("presence.joined")[0]["data"]
    assert joined["user"] == {"id": "bob", "display_name": "Bob"} and joined["status"] == "active"
    snap = reply["data"]["presence"]
    assert [p["user"]["id"] for p in snap] == ["ann", "bob"]
    assert set(snap[0]) == {"user", "status", "viewing", "last_seen"}
    b.send({"action": "sync", "since": 0})  # a second sync announces nothing new
    assert len(a.received("presence.joined")) == 1


def test_two_tabs_are_one_presence_entry(world):
    wid = world.workspace("ann", "bob")
    a = world.connect("ann", wid)
    tab1 = world.connect("bob", wid)
    tab2 = world.connect("bob", wid)
    assert presence_users(a.received()) == [("presence.joined", "bob")]
    tab1.disconnect()
    assert presence_users(a.received()) == [("presence.joined", "bob")]  # no presence.left yet
    tab2.disconnect()
    assert presence_users(a.received()) == [("presence.joined", "bob"), ("presence.left", "bob")]
    assert a.received("presence.left")[0]["data"]["user"] == {"id": "bob", "display_name": "Bob"}
    snap = a.send({"action": "sync", "since": 0})["data"]["presence"]
    assert [p["user"]["id"] for p in snap] == ["ann"]


def test_a_silent_connection_is_swept_its_user_leaves_and_it_is_closed(world):
    wid = world.workspace("ann", "bob")
    a = world.connect("ann", wid)
    b = world.connect("bob", wid)  # then bob's network dies: no $disconnect, no heartbeat
    for _ in range(3):  # ann keeps heartbeating every 30 s...
        world.rt.clock.advance(30)
        assert a.heartbeat()["type"] == "heartbeat.ack"
    # ...and her heartbeat at 90 s found bob stale (> 60 s), within the contract's 90 s
    assert b.cid in world.sink.deleted
    assert presence_users(a.received()) == [("presence.joined", "bob"), ("presence.left", "bob")]
    assert world.rt.store.connection(b.cid) is None
    assert b.cid not in world.rt.store.workspace_connections(wid)
    assert a.cid in world.rt.store.workspace_connections(wid)


def test_the_sweeper_removes_only_connections_due(world):
    wid = world.workspace("ann", "bob", "cat")
    a, b = world.connect("ann", wid), world.connect("bob", wid)
    world.rt.clock.advance(45)
    c = world.connect("cat", wid)
    world.rt.clock.advance(20)  # ann and bob: 65 s silent; cat: 20 s
    assert world.sweep()["removed"] == 2
    assert sorted(world.sink.deleted) == sorted([a.cid, b.cid])
    assert sorted(presence_users(c.received())) == [("presence.left", "ann"), ("presence.left", "bob")]
    assert world.sweep()["removed"] == 0
    assert list(world.rt.store.workspace_connections(wid)) == [c.cid]


def test_a_steady_heartbeat_keeps_a_user_online_past_60_seconds(world):
    wid = world.workspace("ann", "bob")
    a, b = world.connect("ann", wid), world.connect("bob", wid)
    for _ in range(6):  # three minutes
        world.rt.clock.advance(30)
        a.heartbeat()
        b.heartbeat()
        world.sweep()
    assert world.sink.deleted == []
    assert presence_users(a.received()) == [("presence.joined", "bob")]
    snap = a.send({"action": "sync", "since": 0})["data"]["presence"]
    assert [p["user"]["id"] for p in snap] == ["ann", "bob"]


def test_presence_update_is_broadcast_and_kept_in_the_snapshot(world):
    wid = world.workspace("ann", "bob")
    a, b = world.connect("ann", wid), world.connect("bob", wid)
    tid = a.create("look at me")["data"]["task"]["id"]
    assert b.send({"action": "presence.update", "status": "away", "viewing": tid}) is None
    (ev,) = a.received("presence.updated")
    assert (
        ev["data"]["user"]["id"] == "bob" and ev["data"]["status"] == "away" and ev["data"]["viewing"] == tid
    )
    assert b.received("presence.updated") == []
    snap = {p["user"]["id"]: p for p in a.send({"action": "sync", "since": 0})["data"]["presence"]}
    assert snap["bob"]["status"] == "away" and snap["bob"]["viewing"] == tid


def test_a_heartbeat_from_an_unknown_connection_is_told_to_reconnect(world):
    wid = world.workspace("ann")
    a = world.connect("ann", wid)
    world.rt.store.remove_connections(wid, [a.cid])
    world.rt.connections.clear()
    reply = a.heartbeat()
    assert reply["type"] == "error" and reply["data"]["code"] == "unauthorized"
    assert a.cid in world.sink.deleted


# -- notifications ----------------------------------------------------------------------------
def test_an_offline_assignee_gets_the_notification_in_their_next_sync_once(world):
    wid = world.workspace("ann", "bob")
    a = world.connect("ann", wid)
    a.create("for bob", assigned_to="bob")
    b = world.connect("bob", wid, sync=False)
    first = b.send({"action": "sync", "since": None})["data"]["notifications"]
    assert [(n["type"], n["actor_id"]) for n in first] == [("task.assigned", "ann")]
    assert first[0]["delivered_at"] is not None and first[0]["read_at"] is None
    assert b.send({"action": "sync", "since": 1})["data"]["notifications"] == []  # exactly once
    ack = b.send(
        {"action": "notification.read", "request_id": str(uuid.uuid4()), "notification_ids": [first[0]["id"]]}
    )["data"]
    assert ack["ok"] is True and ack["notification_ids"] == [first[0]["id"]]
    from collab.domain import notifications

    assert notifications.list_for(world.rt.db, "bob", unread_only=True)["items"] == []
    assert len(notifications.list_for(world.rt.db, "bob")["items"]) == 1


def test_an_online_assignee_gets_it_live_on_every_connection_and_not_again_in_sync(world):
    wid = world.workspace("ann", "bob")
    other = world.workspace("bob", name="Bob's other board")
    a = world.connect("ann", wid)
    b1, b2 = world.connect("bob", wid), world.connect("bob", other)
    t = a.create("for bob", assigned_to="bob")["data"]["task"]
    for conn in (b1, b2):
        (n,) = conn.received("notification.created")
        assert n["data"]["notification"]["type"] == "task.assigned"
    assert a.received("notification.created") == []  # never to the actor
    assert b1.send({"action": "sync", "since": 1})["data"]["notifications"] == []
    a.update(t["id"], status="done")
    types = [f["data"]["notification"]["type"] for f in b1.received("notification.created")]
    assert types == ["task.assigned", "task.changed"]
    b1.update(t["id"], title="my own change")  # bob's own change: no notification for bob
    assert len(b1.received("notification.created")) == 2


def test_a_failed_post_leaves_the_notification_undelivered_for_the_next_sync(world):
    wid = world.workspace("ann", "bob")
    a, b = world.connect("ann", wid), world.connect("bob", wid)
    world.sink.gone.add(b.cid)
    a.create("for bob", assigned_to="bob")
    assert b.received("notification.created") == []
    b2 = world.connect("bob", wid, sync=False)
    notes = b2.send({"action": "sync", "since": None})["data"]["notifications"]
    assert [n["type"] for n in notes] == ["task.assigned"]


def test_reassign_and_delete_notify_the_right_people(world):
    wid = world.workspace("ann", "bob", "cat")
    a = world.connect("ann", wid)
    t = a.create("hot potato", assigned_to="bob")["data"]["task"]
    a.update(t["id"], assigned_to="cat")
    a.send({"action": "task.delete", "request_id": str(uuid.uuid4()), "task_id": t["id"]})
    rows = world.rt.db.run(
        lambda cur: cur.execute(
            "SELECT user_id, type FROM notifications ORDER BY created_at, type"
        ).fetchall()
    )
    assert sorted((r["user_id"], r["type"]) for r in rows) == [
        ("bob", "task.assigned"),
        ("bob", "task.unassigned"),
        ("cat", "task.assigned"),
        ("cat", "task.deleted"),
    ]


def test_a_malformed_notifications_cursor_is_a_validation_error(world):
    import pytest

    from collab.domain import notifications
    from collab.errors import ValidationError

    world.user("ann")
    for cursor in ("not-a-uuid", "a\x00b"):
        with pytest.raises(ValidationError):
            notifications.list_for(world.rt.db, "ann", cursor=cursor)
