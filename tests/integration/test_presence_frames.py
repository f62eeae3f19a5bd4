"""Presence frames to the letter: an editing indicator's frame and its expiry, who is sent what
(never the tab that caused it, never an away tab a status change), and leaves held for the grace
taken only once it has passed. The clock is the test's: nothing waits."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from collab.adapters.redis import keys
from collab.clock import iso
from collab.domain import presence


@pytest.fixture
def trio(world: Any) -> Any:
    """ann, bob and carol connected to one workspace with one task; the sink emptied."""
    wid = world.workspace("ann", "bob", "carol")
    a, b, c = (world.connect(u, wid) for u in ("ann", "bob", "carol"))
    task = a.create("Write the notes")["data"]["task"]
    world.sink.reset()
    return wid, a, b, c, task


def test_an_editing_indicator_goes_out_whole_and_expires_15_seconds_after_it_was_set(trio, world):
    wid, a, b, _c, task = trio
    now = world.rt.clock.utcnow()
    b.editing(task["id"], "description")
    # what bob views is his presence entry, set by the same frame
    (viewed,) = a.received("presence.updated")
    assert viewed["data"]["viewing"] == task["id"]
    (ev,) = a.received("presence.editing")
    assert (ev["workspace_id"], ev["user_id"]) == (wid, "bob")
    assert ev["data"] == {
        "user": {"id": "bob", "display_name": "Bob"},
        "editing": {
            "task_id": task["id"],
            "field": "description",
            "expires_at": iso(now + timedelta(seconds=presence.EDITING_TTL_S)),
        },
    }
    # Redis keeps it exactly as long: the hash expires with its latest indicator
    assert 14_000 < world.rt.store.r.pttl(keys.ws(wid, "editing")) <= 15_000
    # the tab that set it hears nothing of its own change: no status echo, no indicator
    assert b.received() == []
    b.editing(None)  # blur: the indicator is cleared, for the others only
    (off,) = [f for f in a.received("presence.editing") if f["data"]["editing"] is None]
    assert off["data"]["user"] == {"id": "bob", "display_name": "Bob"}
    assert b.received() == []


def test_an_away_tab_is_not_told_who_is_editing(trio, world):
    _wid, a, b, c, task = trio
    c.beat(seq=0, mode="away")  # carol's tab is hidden
    world.sink.reset()
    b.editing(task["id"])
    assert len(a.received("presence.editing")) == 1
    assert c.received("presence.editing") == []


def test_a_heartbeats_status_change_is_not_posted_back_to_the_tab_that_sent_it(trio, world):
    _wid, a, b, _c, _task = trio
    b.beat(seq=0, mode="away")
    b.beat(seq=0, mode="active")  # bob's tab is active again: it could be sent its own change
    assert [f["data"]["status"] for f in a.received("presence.updated")] == ["away", "active"]
    assert b.received("presence.updated") == []


def hold(world: Any, conn: Any) -> None:
    """``conn`` closes and its user's leave is held, as ``$disconnect`` does before it waits the
    grace out; here whoever held it died without sending it."""
    removed = world.rt.store.remove_connections(conn.wid, [conn.cid])
    presence.settle(world.rt, world.rt.gateway_for(None), conn.wid, removed, hold=True)


def test_the_sweeper_sends_only_the_leaves_held_longer_than_the_grace(trio, world):
    wid, a, b, c, _task = trio
    clock = world.rt.clock
    hold(world, b)
    clock.advance(0.5)
    hold(world, c)
    clock.advance(0.4)  # bob's leave is 0.9 s old, carol's 0.4 s
    world.sweep()
    assert a.received("presence.left") == []
    clock.advance(0.2)  # bob's: 1.1 s, past the grace; carol's: 0.6 s
    world.sweep()
    assert [f["data"]["user"]["id"] for f in a.received("presence.left")] == ["bob"]
    assert world.rt.store.leaves_held(wid)  # carol's waits for its own second
    clock.advance(0.5)
    world.sweep()
    assert [f["data"]["user"]["id"] for f in a.received("presence.left")] == ["bob", "carol"]
    assert not world.rt.store.leaves_held(wid)


def test_a_presence_list_is_cut_to_its_budget_to_the_byte_active_users_first(world):
    """Whole (and not flagged) when it fits exactly; one byte less and it is cut: active users
    first, then by id, as many as fit counting the brackets and a comma after each."""
    from collab.protocol.wire import size

    wid = world.workspace("aaron", "bea", "cy", "dee")
    conns = {u: world.connect(u, wid) for u in ("aaron", "bea", "cy", "dee")}
    conns["aaron"].beat(seq=0, mode="away")  # the first by id, but away: listed last
    entries = presence.snapshot(world.rt, wid)
    whole = size(entries)
    assert presence.snapshot_within(world.rt, wid, whole) == (entries, False)
    by_id = {e["user"]["id"]: e for e in entries}
    order = [by_id[u] for u in ("bea", "cy", "dee", "aaron")]
    cut, more = presence.snapshot_within(world.rt, wid, whole - 1)
    assert more is True and cut == order[:3]
    two = 2 + (size(order[0]) + 1) + (size(order[1]) + 1)
    assert presence.snapshot_within(world.rt, wid, two) == (order[:2], True)
    assert presence.snapshot_within(world.rt, wid, two - 1) == (order[:1], True)


def test_a_join_says_when_the_user_was_last_seen_to_the_millisecond(world):
    wid = world.workspace("ann", "bob")
    a = world.connect("ann", wid)
    world.rt.clock.advance(12.3456)  # bob arrives later than ann, at a time with a fraction
    world.connect("bob", wid)
    (joined,) = a.received("presence.joined")
    assert joined["data"] == {
        "user": {"id": "bob", "display_name": "Bob"},
        "status": "active",
        "viewing": None,
        "last_seen": iso(world.rt.clock.utcnow()),
    }
