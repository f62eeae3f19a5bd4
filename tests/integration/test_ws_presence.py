"""Presence (contract 3.5) and notifications (3.6) with a manual clock: no test sleeps for 60 s."""

import uuid


def presence_users(frames):
    """(type, user id) of every presence change received, a presence.batch's in order."""
    out = []
    for f in frames:
        if f["type"] == "presence.batch":
            out += [(e["type"], e["data"]["user"]["id"]) for e in f["data"]["events"]]
        elif f["type"].startswith("presence."):
            out.append((f["type"], f["data"]["user"]["id"]))
    return out


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
    assert [f["type"] for f in c.received()] == ["presence.batch"]  # one frame for both
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

    assert notifications.list_for(world.rt.db, "bob", unread_only=True, limit=50)["items"] == []
    assert len(notifications.list_for(world.rt.db, "bob", limit=50)["items"]) == 1


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
            notifications.list_for(world.rt.db, "ann", cursor=cursor, limit=50)


# -- v1.2: modes, quiet heartbeats, held leaves -------------------------------------------------
def test_each_mode_has_its_own_deadline_active_60_s_away_570_s(world):
    wid = world.workspace("ann", "bob", "cat")
    a, b, c = world.connect("ann", wid), world.connect("bob", wid), world.connect("cat", wid)
    a.beat(seq=0, mode="active")
    b.beat(seq=0, mode="away")  # a hidden tab: next heartbeat in 7 minutes
    c.beat(seq=0, mode="away")
    world.rt.clock.advance(60)
    assert world.sweep()["removed"] == 1  # ann, active and silent for 60 s: dead
    assert world.sink.deleted == [a.cid]
    for _ in range(8):  # bob keeps his 7-minute heartbeat for an hour; cat stops
        world.rt.clock.advance(420)
        b.beat(seq=0, mode="away")
        assert world.sweep()["removed"] in (0, 1)
    assert c.cid in world.sink.deleted and b.cid not in world.sink.deleted
    assert presence_users(b.received()) == [  # away: joins and leaves, not cat's status change
        ("presence.joined", "cat"),
        ("presence.left", "ann"),
        ("presence.left", "cat"),
    ]


def test_a_dead_away_tab_is_noticed_within_its_interval_plus_the_margin_and_not_before(world):
    wid = world.workspace("ann", "bob")
    a, b = world.connect("ann", wid), world.connect("bob", wid)
    b.beat(seq=0, mode="away")  # then bob's laptop sleeps: no $disconnect, no heartbeat
    noticed = None
    for step in range(1, 30):  # ann, active, heartbeats every 30 s; the sweeper runs every minute
        world.rt.clock.advance(30)
        a.beat(seq=0, mode="active")
        if step % 2 == 0:
            world.sweep()
        if noticed is None and b.cid in world.sink.deleted:
            noticed = step * 30
    assert noticed is not None and 570 <= noticed <= 630  # after its deadline, within 10.5 minutes
    assert a.cid not in world.sink.deleted
    assert presence_users(a.received())[-2:] == [("presence.updated", "bob"), ("presence.left", "bob")]


def test_v1_heartbeats_keep_the_connections_mode(world):
    wid = world.workspace("ann", "bob")
    world.connect("ann", wid)
    b = world.connect("bob", wid)
    assert b.send({"action": "presence.update", "status": "away", "viewing": None}) is None
    world.rt.clock.advance(300)
    assert b.heartbeat()["type"] == "heartbeat.ack"  # a v1 heartbeat: answered, mode kept (away)
    world.rt.clock.advance(420)
    world.sweep()
    assert b.cid not in world.sink.deleted  # 420 s silent: fine for an away tab


def test_peers_see_away_once_every_tab_of_the_user_is_away_and_active_again_at_once(world):
    wid = world.workspace("ann", "bob")
    a = world.connect("ann", wid)
    tab1, tab2 = world.connect("bob", wid), world.connect("bob", wid)
    assert tab1.beat(seq=0, mode="away") is None
    assert a.received("presence.updated") == []  # tab2 is still active: bob is active
    tab2.beat(seq=0, mode="away")
    (away,) = a.received("presence.updated")
    assert away["data"]["user"]["id"] == "bob" and away["data"]["status"] == "away"
    tab2.beat(seq=0, mode="away")  # the same mode again: nothing new to say
    assert len(a.received("presence.updated")) == 1
    tab1.beat(seq=0, mode="active", probe=True)
    assert [f["data"]["status"] for f in a.received("presence.updated")] == ["away", "active"]
    tab1.disconnect()  # bob's only active tab goes: he is away again (tab2)
    assert [f["data"]["status"] for f in a.received("presence.updated")] == ["away", "active", "away"]
    snap = {p["user"]["id"]: p for p in a.send({"action": "sync", "since": 0})["data"]["presence"]}
    assert snap["bob"]["status"] == "away"


def test_a_quiet_heartbeat_is_answered_only_when_probed_or_behind(world):
    wid = world.workspace("ann", "bob")
    a, b = world.connect("ann", wid), world.connect("bob", wid)
    assert b.beat(seq=0, mode="active") is None  # nothing to say: no message out
    assert b.beat(seq=None, mode="active") is None  # before its first sync's seq, the same
    probe = b.beat(seq=0, mode="active", probe=True)
    assert probe is not None and probe["type"] == "heartbeat.ack" and probe["data"]["seq"] == 0
    assert [p["user"]["id"] for p in probe["data"]["presence"]] == ["ann", "bob"]
    a.create("one")
    a.create("two")
    behind = b.beat(seq=1, mode="active")  # it missed seq 2: the answer says so, and it syncs
    assert behind is not None and behind["data"] == {"seq": 2}
    assert b.beat(seq=2, mode="active") is None
    assert b.heartbeat() == {**b.heartbeat(), "data": {}}  # a v1 heartbeat: answered every time


def test_a_quiet_heartbeat_from_a_connection_that_is_gone_is_still_told_to_reconnect(world):
    wid = world.workspace("ann")
    a = world.connect("ann", wid)
    world.rt.clock.advance(61)
    world.sweep()
    reply = a.beat(seq=0, mode="active")
    assert reply is not None and reply["type"] == "error" and reply["data"]["code"] == "unauthorized"


def test_a_reconnect_within_the_grace_is_never_seen_by_peers(world):
    wid = world.workspace("ann", "bob")
    a = world.connect("ann", wid)
    b = world.connect("bob", wid)
    clock = world.rt.clock
    advance = clock.sleep

    def reconnect_during_the_grace(seconds: float) -> None:  # the $disconnect waits; bob is back
        advance(0.4)
        world.connect("bob", wid)
        advance(seconds - 0.4)

    clock.sleep = reconnect_during_the_grace
    try:
        b.disconnect()  # API Gateway's 2-hour limit, say: the client reconnects at once
    finally:
        del clock.sleep
    assert presence_users(a.received()) == [("presence.joined", "bob")]  # no left, no joined
    snap = {p["user"]["id"] for p in a.send({"action": "sync", "since": 0})["data"]["presence"]}
    assert snap == {"ann", "bob"}


def test_a_hidden_tab_reconnecting_within_the_grace_stays_away_and_posts_nothing(world):
    wid = world.workspace("ann", "bob")
    a = world.connect("ann", wid)
    b = world.connect("bob", wid)
    b.beat(seq=0, mode="away")
    clock = world.rt.clock
    advance = clock.sleep
    back = []
    clock.sleep = lambda s: (back.append(world.connect("bob", wid)), advance(s))
    try:
        b.disconnect()
    finally:
        del clock.sleep
    assert back[0].beat(seq=0, mode="away") is None  # the client's first heartbeat: still hidden
    assert [f["data"]["status"] for f in a.received("presence.updated")] == ["away"]  # bob's first
    assert presence_users(a.received()) == [("presence.joined", "bob"), ("presence.updated", "bob")]
    snap = {p["user"]["id"]: p["status"] for p in a.send({"action": "sync", "since": 0})["data"]["presence"]}
    assert snap == {"ann": "active", "bob": "away"}
    back[0].beat(seq=0, mode="active", probe=True)  # and when it is looked at again: active
    assert [f["data"]["status"] for f in a.received("presence.updated")] == ["away", "active"]


def test_a_held_leave_whose_flush_never_ran_is_sent_by_the_sweeper(world):
    from collab.domain import presence

    wid = world.workspace("ann", "bob")
    a = world.connect("ann", wid)
    b = world.connect("bob", wid)
    info = world.rt.store.connection(b.cid)
    removed = world.rt.store.remove_connections(wid, [b.cid])
    presence.settle(world.rt, world.rt.gateway_for(None), wid, removed, hold=True)  # then it died
    assert presence_users(a.received()) == [("presence.joined", "bob")]
    world.rt.clock.advance(1)
    world.sweep()
    assert presence_users(a.received()) == [("presence.joined", "bob"), ("presence.left", "bob")]
    assert info is not None and world.rt.store.workspaces_with_leaves(world.rt.clock.now_ms()) == []


def test_an_away_tab_is_sent_no_status_changes_and_gets_the_list_when_it_comes_back(world):
    wid = world.workspace("ann", "bob", "cat")
    a, b, c = world.connect("ann", wid), world.connect("bob", wid), world.connect("cat", wid)
    b.beat(seq=0, mode="away")  # bob's tab is hidden
    c.beat(seq=0, mode="away")  # cat's too: ann sees it, bob's hidden tab is not sent it
    assert [f["data"]["user"]["id"] for f in a.received("presence.updated")] == ["bob", "cat"]
    assert b.received("presence.updated") == []
    back = b.beat(seq=0, mode="active", probe=True)  # bob looks again: one answer with the list
    assert back is not None
    assert {p["user"]["id"]: p["status"] for p in back["data"]["presence"]} == {
        "ann": "active",
        "bob": "active",
        "cat": "away",
    }
