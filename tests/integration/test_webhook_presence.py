"""``collab.domain.webhook_presence`` against Redis with a recording queue: a join goes out at once,
a leave only after ``LEAVE_DEBOUNCE_S`` without a return, each leave is taken once, and the minute
tick's index says which workspaces have leaves due and from when."""

from __future__ import annotations

from typing import Any

import pytest

from collab.adapters.redis import keys
from collab.domain import webhook_presence as wp

WID = "w1"


class Queue:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any], str]] = []

    def send(self, group: str, body: dict[str, Any], dedup: str) -> None:
        self.sent.append((group, body, dedup))


@pytest.fixture
def hooked(settings: Any, clean: None, clock: Any) -> tuple[Any, Queue]:
    from collab import runtime

    queue = Queue()
    rt = runtime.Runtime(settings, clock=clock, queue=queue)
    rt.store.r.set(keys.ws(WID, "webhooks"), "1")  # the workspace has an endpoint
    return rt, queue


def index(rt: Any) -> dict[str, float]:
    return {k.decode(): s for k, s in rt.store.r.zrange(wp.LEAVES, 0, -1, withscores=True)}


def test_a_join_goes_out_at_once_with_who_and_when(hooked):
    rt, queue = hooked
    now = rt.clock.now_ms()
    wp.changed(rt, WID, "bob", "Bob", joined=True)
    assert queue.sent == [
        (
            WID,
            {
                "kind": "presence",
                "workspace_id": WID,
                "event": {
                    "type": "presence.joined",
                    "user": {"id": "bob", "display_name": "Bob"},
                    "at_ms": now,
                },
            },
            f"{WID}:join:bob:{now}",
        )
    ]


def test_nothing_without_an_endpoint_or_a_queue(hooked, settings, clock):
    from collab import runtime

    rt, queue = hooked
    wp.changed(rt, "other", "bob", "Bob", joined=True)
    wp.changed(rt, "other", "bob", "Bob", joined=False)
    assert queue.sent == [] and rt.store.r.hlen(wp.pending_key("other")) == 0 and index(rt) == {}
    bare = runtime.Runtime(settings, clock=clock)  # no WEBHOOK_QUEUE_URL
    wp.changed(bare, WID, "bob", "Bob", joined=False)
    assert rt.store.r.hlen(wp.pending_key(WID)) == 0


def test_a_leave_waits_the_window_and_a_return_within_it_cancels_both(hooked):
    rt, queue = hooked
    start = rt.clock.now_ms()
    wp.changed(rt, WID, "bob", "Bob", joined=False)
    assert index(rt) == {WID: start}
    rt.clock.advance(5)
    wp.changed(rt, WID, "bob", "Bob", joined=True)  # a reload: back within the window
    assert queue.sent == [] and rt.store.r.hlen(wp.pending_key(WID)) == 0
    rt.clock.advance(wp.LEAVE_DEBOUNCE_S)
    assert wp.due_leaves(rt, WID) == [] and index(rt) == {}


def test_due_leaves_are_taken_once_at_the_window_and_the_index_keeps_the_earliest_left(hooked):
    rt, _ = hooked
    t0 = rt.clock.now_ms()
    wp.changed(rt, WID, "ann", "Ann", joined=False)
    rt.clock.advance(10)
    wp.changed(rt, WID, "bob", "", joined=False)  # no name: the id stands in
    assert index(rt) == {WID: t0}  # the earliest pending leave (nx)
    rt.clock.advance(wp.LEAVE_DEBOUNCE_S - 10 - 0.001)
    assert wp.due_leaves(rt, WID) == [] and wp.workspaces_with_due_leaves(rt) == []
    rt.clock.advance(0.001)  # ann's leave is exactly LEAVE_DEBOUNCE_S old: due
    assert wp.workspaces_with_due_leaves(rt) == [WID]
    assert wp.due_leaves(rt, WID) == [
        {"type": "presence.left", "user": {"id": "ann", "display_name": "Ann"}, "at_ms": t0}
    ]
    assert index(rt) == {WID: t0 + 10_000}  # bob's, still pending
    assert wp.due_leaves(rt, WID) == []  # taken once
    rt.clock.advance(10)
    assert wp.due_leaves(rt, WID) == [
        {"type": "presence.left", "user": {"id": "bob", "display_name": "bob"}, "at_ms": t0 + 10_000}
    ]
    assert index(rt) == {} and rt.store.r.hlen(wp.pending_key(WID)) == 0


def test_the_tick_lists_at_most_its_limit(hooked):
    rt, _ = hooked
    for w in ("w1", "w2", "w3"):
        rt.store.r.zadd(wp.LEAVES, {w: rt.clock.now_ms()})
    rt.clock.advance(wp.LEAVE_DEBOUNCE_S)
    assert sorted(wp.workspaces_with_due_leaves(rt)) == ["w1", "w2", "w3"]
    assert len(wp.workspaces_with_due_leaves(rt, limit=2)) == 2
    rt.store.r.zadd(wp.LEAVES, {f"x{i}": 0 for i in range(1000)})
    assert len(wp.workspaces_with_due_leaves(rt)) == 1000  # a tick's bounded work by default


def test_every_due_leave_is_taken_whatever_order_redis_lists_them_in(hooked):
    """600 pending leaves make the hash a real hash table (past any listpack setting: Redis's
    default is 128 entries, this machine's 512), listed in no particular order: the ones not yet
    due are skipped, not where the taking stops."""
    rt, _ = hooked
    for i in range(600):
        wp.changed(rt, WID, f"u{i:03d}", "", joined=False)
        rt.clock.advance(0.05)  # u000-u299 leave over 15 s, then u300-u599 over the next 15 s
    rt.clock.advance(wp.LEAVE_DEBOUNCE_S - 30 + 15.01)  # those of the first 15.01 s are due: u000-u300
    taken = sorted(e["user"]["id"] for e in wp.due_leaves(rt, WID))
    assert taken == [f"u{i:03d}" for i in range(301)]
    assert rt.store.r.hlen(wp.pending_key(WID)) == 299


def test_a_redis_failure_is_logged_and_never_raised(hooked, monkeypatch, caplog):
    rt, queue = hooked

    def down(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("redis is down")

    monkeypatch.setattr(rt.store.r, "exists", down)
    with caplog.at_level("WARNING"):
        wp.changed(rt, WID, "bob", "Bob", joined=True)
    assert queue.sent == []
    assert [(r.getMessage(), r.workspace_id) for r in caplog.records] == [("presence webhook failed", WID)]
