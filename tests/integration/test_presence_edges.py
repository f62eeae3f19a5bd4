"""Presence at its edges: the 60 s rule to the tenth of a second (a manual clock, no sleeping), a
sweep that works through every batch and stops after 100, a member's connections closed at once,
and whose name a presence frame carries."""

from __future__ import annotations

from collab.adapters.redis import keys
from collab.clock import iso
from collab.domain import presence


def left(conn):
    return [f["data"]["user"]["id"] for f in conn.received("presence.left")]


def test_dead_is_sixty_seconds_without_a_heartbeat_by_the_sweeper(world):
    wid = world.workspace("ann", "bob")
    ann, bob = world.connect("ann", wid), world.connect("bob", wid)
    gw = world.rt.gateway_for(None)
    world.rt.clock.advance(59.99)
    assert presence.sweep(world.rt, gw) == 0
    world.rt.clock.advance(0.02)  # 60.01 s after both connected
    assert presence.sweep(world.rt, gw) == 2
    assert world.rt.store.connection(ann.cid) is None and world.rt.store.connection(bob.cid) is None


def test_dead_is_sixty_seconds_without_a_heartbeat_by_a_peers_heartbeat(world):
    wid = world.workspace("ann", "bob")
    ann, bob = world.connect("ann", wid), world.connect("bob", wid)
    world.rt.clock.advance(59.99)
    assert ann.heartbeat()["type"] == "heartbeat.ack"
    assert world.rt.store.connection(bob.cid) is not None
    world.rt.clock.advance(0.02)  # bob: 60.01 s silent; ann heartbeat 0.02 s ago
    assert ann.heartbeat()["type"] == "heartbeat.ack"
    assert world.rt.store.connection(bob.cid) is None
    assert left(ann) == ["bob"] and bob.cid in world.sink.deleted


def test_the_sweeper_works_through_every_batch(world):
    """Dead connections in three workspaces, three to a batch (so a batch spans two workspaces):
    every batch is swept, the count is the whole run's, and a full batch is never taken for the last."""
    dead = []
    for i in range(3):
        wid = world.workspace(f"o{i}", f"m{i}")
        dead += [world.connect(f"o{i}", wid), world.connect(f"m{i}", wid)]
    world.rt.clock.advance(61)
    assert presence.sweep(world.rt, world.rt.gateway_for(None), batch=3) == 6
    assert all(world.rt.store.connection(c.cid) is None for c in dead)
    assert world.rt.store.r.zcard(keys.SWEEP) == 0


def test_a_sweep_run_is_bounded_to_100_batches(world):
    """The rest waits for the next run (a minute later): one run never works unboundedly."""
    now = world.rt.clock.now_ms()
    world.rt.store.r.zadd(keys.SWEEP, {f"w{i}|c{i}": now - 120_000 for i in range(101)})
    presence.sweep(world.rt, world.rt.gateway_for(None), batch=1)
    assert world.rt.store.r.zcard(keys.SWEEP) == 1


def test_closing_a_removed_members_connections_forgets_them_here_and_tells_the_others(world):
    wid = world.workspace("ann", "bob")
    ann = world.connect("ann", wid)
    tab1, tab2 = world.connect("bob", wid), world.connect("bob", wid)
    assert {tab1.cid, tab2.cid} <= set(world.rt.connections)  # this container knows them

    world.remove_member(wid, "bob")
    assert presence.close_user(world.rt, world.rt.gateway_for(None), wid, "bob") == 2

    assert not {tab1.cid, tab2.cid} & set(world.rt.connections)
    assert {tab1.cid, tab2.cid} <= set(world.sink.deleted)
    [frame] = ann.received("presence.left")
    assert frame["data"] == {
        "user": {"id": "bob", "display_name": "Bob"},
        "status": "away",
        "viewing": None,
        "last_seen": iso(world.rt.clock.utcnow()),
    }
    assert (frame["user_id"], frame["workspace_id"]) == ("bob", wid)
    assert tab1.heartbeat()["data"]["code"] == "unauthorized"


def test_a_presence_update_is_from_its_user(world):
    wid = world.workspace("ann", "bob")
    ann, bob = world.connect("ann", wid), world.connect("bob", wid)
    assert ann.send({"action": "presence.update", "status": "away", "viewing": None}) is None
    [update] = bob.received("presence.updated")
    assert (update["user_id"], update["workspace_id"]) == ("ann", wid)
    assert (update["data"]["user"]["id"], update["data"]["status"]) == ("ann", "away")
    assert ann.received("presence.updated") == []


def test_closing_connections_this_container_never_saw(world):
    """Another container served them: nothing of them is cached here, and closing them is no error."""
    wid = world.workspace("ann", "bob")
    ann, bob = world.connect("ann", wid), world.connect("bob", wid)
    world.rt.connections.clear()
    world.remove_member(wid, "bob")
    assert presence.close_user(world.rt, world.rt.gateway_for(None), wid, "bob") == 1
    assert world.rt.store.connection(bob.cid) is None and left(ann) == ["bob"]
