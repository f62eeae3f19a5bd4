"""Presence in a large workspace (issue 15): from 100 synced connections, changes go out as one
``presence.batch`` per interval to everyone, so n users arriving together cost O(n) posts, not
O(n^2). The clock is the test's (nothing waits): the interval passes when the test says so."""

from __future__ import annotations

import json
from typing import Any

from test_fanout_split import announced_peers

from collab.domain import presence


def _presence_posts(world: Any) -> list[tuple[str, dict[str, Any]]]:
    return [(c, f) for c, f in world.sink.all() if f["type"].startswith("presence.")]


def test_thirty_joins_in_a_large_workspace_are_one_frame_to_each(world: Any) -> None:
    """Given 120 synced connections, when 30 more users connect and sync within one interval, then
    nothing is posted until the interval has passed; the next heartbeat posts one presence.batch
    with the 30 joins to each of the 150 connections: 150 posts, where one frame per join to every
    peer would be ~4,000."""
    names = [f"new{i:02d}" for i in range(30)]
    wid = world.workspace("ann", *names)
    peers = announced_peers(world, wid, 120)
    world.sink.reset()
    newcomers = [world.connect(u, wid) for u in names]
    assert _presence_posts(world) == []
    world.rt.clock.advance(presence.BATCH_INTERVAL_MS / 1000)
    newcomers[0].heartbeat()
    posts = _presence_posts(world)
    assert len(posts) == 150 and {f["type"] for _, f in posts} == {"presence.batch"}
    assert {c for c, _ in posts} == set(peers) | {c.cid for c in newcomers}
    [events] = {tuple((e["type"], e["user_id"]) for e in sorted(f["data"]["events"], key=lambda e: e["user_id"]))
                for _, f in posts}  # fmt: skip
    assert events == tuple(("presence.joined", f"new{i:02d}") for i in range(30))
    # and the batch is gone: the next heartbeat posts nothing
    world.sink.reset()
    newcomers[1].heartbeat()
    assert _presence_posts(world) == []


def test_a_join_and_a_leave_within_one_interval_cancel_out(world: Any) -> None:
    wid = world.workspace("ann", "visitor", "mover")
    announced_peers(world, wid, 110)
    world.sink.reset()
    visitor = world.connect("visitor", wid)
    mover = world.connect("mover", wid)
    visitor.disconnect()  # its leave is held for the grace, then joins the batch
    world.rt.clock.advance(presence.BATCH_INTERVAL_MS / 1000)
    mover.heartbeat()
    [events] = {
        tuple(sorted((e["type"], e["user_id"]) for e in f["data"]["events"]))
        for _, f in _presence_posts(world)
    }
    assert events == (("presence.joined", "mover"),)


def test_the_sweeper_posts_a_batch_nobody_else_did(world: Any) -> None:
    wid = world.workspace("ann", "late")
    announced_peers(world, wid, 105)
    world.connect("late", wid)
    world.sink.reset()
    world.rt.clock.advance(presence.BATCH_INTERVAL_MS / 1000)
    world.sweep()
    posts = _presence_posts(world)
    assert len(posts) == 106 and all(f["type"] == "presence.batch" for _, f in posts)
    assert {(f["workspace_id"], f["user_id"]) for _, f in posts} == {(wid, None)}  # the room's, nobody's


def test_a_small_workspace_still_posts_each_change_at_once(world: Any) -> None:
    wid = world.workspace("ann", "bob")
    a = world.connect("ann", wid)
    world.sink.reset()
    world.connect("bob", wid)
    assert [f["type"] for f in world.sink.frames(a.cid)] == ["presence.joined"]


def test_a_presence_list_longer_than_a_reply_holds_is_cut_and_flagged(world: Any, api: Any) -> None:
    """300 online users with 100-character names: the sync reply keeps to 128 KB, holds as many
    entries as fit in 32 KB and says ``more_presence``; the HTTP API gives the whole list."""
    from collab.domain.presence import PRESENCE_BYTES
    from collab.protocol.wire import MESSAGE_LIMIT, size

    wid = world.workspace("ann")
    announced_peers(world, wid, 300)
    store = world.rt.store
    for uid, raw in store.presence(wid).items():  # the entries peers see carry the long names
        store.r.hset(f"collab:{{w:{wid}}}:presence", uid, json.dumps({**raw, "display_name": "n" * 100}))
    ann = world.connect("ann", wid, sync=False)
    reply = ann.send({"action": "sync", "since": None})
    assert reply is not None and size(reply) <= MESSAGE_LIMIT
    data = reply["data"]
    assert data["more_presence"] is True
    assert 0 < len(data["presence"]) < 301 and size(data["presence"]) <= PRESENCE_BYTES
    everyone = api.ok("GET", f"/workspaces/{wid}/presence", "ann")["items"]
    assert len(everyone) == 301


def test_a_large_workspace_stays_large_while_its_connections_come_back(world: Any) -> None:
    """A storm: most connections of a large workspace are gone at once (fewer than 100 remain);
    the users coming back are still batched, not posted one by one to everyone."""
    wid = world.workspace("ann", "late")
    peers = announced_peers(world, wid, 120)
    world.connect("ann", wid)  # a change while large: the workspace is known large for 10 minutes
    world.rt.store.remove_connections(wid, peers[:100])  # dropped, as in a storm
    world.rt.clock.advance(presence.BATCH_INTERVAL_MS / 1000)
    world.sweep()  # ann's join goes out
    world.sink.reset()
    world.connect("late", wid)
    assert _presence_posts(world) == []
    world.rt.clock.advance(presence.BATCH_INTERVAL_MS / 1000)
    world.sweep()
    posts = _presence_posts(world)
    assert len(posts) == 22 and {f["type"] for _, f in posts} == {"presence.batch"}
