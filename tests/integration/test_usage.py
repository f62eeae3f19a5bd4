"""The cost meter: a scripted session's frames, posts, connection minutes and handler time, priced
by the model of bench/cost.py; over the budget, presence is throttled first and the admins told."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from test_http_helpers import Api

from collab import pricing
from collab.adapters.redis import keys
from collab.domain import usage


@pytest.fixture
def metered(world: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from collab.domain import usage

    monkeypatch.setattr(usage, "FLUSH_S", 0.0)  # write at once: the test reads right after
    usage._flags.clear()
    usage._buffer.clear()
    yield world
    usage._flags.clear()


def budget(world: Any, usd: float) -> None:
    from collab import runtime

    rt = runtime.Runtime(
        world.rt.settings.model_copy(update={"workspace_budget_usd": usd}), clock=world.rt.clock
    )
    old = world.rt
    runtime.install(rt)
    world.rt = rt
    old.db.close()


def test_a_scripted_session_is_metered_and_priced(metered: Any) -> None:
    world = metered
    wid = world.workspace("alice", "bob")
    alice, bob = world.connect("alice", wid), world.connect("bob", wid)  # 2 syncs; bob's join: 1 post
    alice.create("one")  # 1 post (to bob)
    alice.create("two")  # 1 post
    bob.heartbeat()
    bob.heartbeat()
    got = Api(world.rt.settings).ok("GET", f"/workspaces/{wid}/usage", "alice")
    assert (got["frames_in"], got["replies_out"], got["posts_out"]) == (6, 6, 3)
    assert got["connection_minutes"] == 1.0 and got["invocations"] == 6 and got["handler_ms"] > 0
    cost = got["cost_to_date"]
    assert cost["api_gateway_usd"] == pytest.approx(
        (6 + 6 + 3) * pricing.WS_MESSAGE_USD + pricing.WS_CONNECTION_MINUTE_USD
    )
    assert cost["lambda_usd"] > 6 * pricing.LAMBDA_REQUEST_USD
    assert got["monthly_estimate_usd"] >= cost["total_usd"]
    assert got["budget_usd"] is None and got["over_budget"] is False
    member = Api(world.rt.settings).call("GET", f"/workspaces/{wid}/usage", "bob")
    assert member.status == 403
    bad = Api(world.rt.settings).call("GET", f"/workspaces/{wid}/usage", "alice", query={"month": "2026-13"})
    assert bad.status == 422


def test_over_budget_presence_is_throttled_first_and_admins_are_told(metered: Any) -> None:
    world = metered
    budget(world, 0.0)  # any use is over it
    wid = world.workspace("alice", "bob")
    alice, bob = world.connect("alice", wid), world.connect("bob", wid)
    alice.create("one")  # the message route checks the budget as it meters
    told = world.rt.db.run(
        lambda cur: cur.execute(
            "SELECT user_id, payload FROM notifications WHERE type = 'usage.over_budget'"
        ).fetchall()
    )
    assert [r["user_id"] for r in told] == ["alice"]  # the owner (bob is a member), once
    assert told[0]["payload"]["budget_usd"] == 0.0
    world.sink.reset()
    for status in ("away", "active", "away"):
        alice.send({"action": "presence.update", "status": status, "viewing": None})
    updates = bob.received("presence.updated")
    assert len(updates) == 1  # one per user per 30 s while over budget; the state is still stored
    presence = Api(world.rt.settings).ok("GET", f"/workspaces/{wid}/presence", "bob")["items"]
    assert {p["user"]["id"]: p["status"] for p in presence}["alice"] == "away"
    # task events are not throttled
    alice.create("two")
    assert len(bob.received("task.created")) == 1
    again = world.rt.db.run(
        lambda cur: cur.execute(
            "SELECT count(*) AS n FROM notifications WHERE type = 'usage.over_budget'"
        ).fetchone()
    )
    assert again["n"] == 1
    usage = Api(world.rt.settings).ok("GET", f"/workspaces/{wid}/usage", "alice")
    assert usage["over_budget"] is True and usage["budget_usd"] == 0.0
    assert json.dumps(usage)  # plain JSON


def test_a_task_overwritten_notice_is_metered_as_a_post(metered: Any) -> None:
    """The notice to the overwritten user is a post like any other: priced, not free."""
    world = metered
    wid = world.workspace("alice", "bob")
    alice, bob = world.connect("alice", wid), world.connect("bob", wid)
    task = alice.create("one")["data"]["task"]
    bob.update(task["id"], status="done")
    before = Api(world.rt.settings).ok("GET", f"/workspaces/{wid}/usage", "alice")["posts_out"]
    ack = alice.update(task["id"], status="todo", seen_version=1)
    assert [o["field"] for o in ack["data"]["overwrote"]] == ["status"]
    assert len(bob.received("task.overwritten")) == 1
    after = Api(world.rt.settings).ok("GET", f"/workspaces/{wid}/usage", "alice")["posts_out"]
    assert after - before == 2  # task.updated to bob, and the notice


# -- the budget's pieces, one at a time ---------------------------------------------------------
class Monotonic:
    """``usage``'s container clock (``time.monotonic``), moved by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def monotonic(self) -> float:
        return self.t


def test_the_admins_are_told_live_with_the_month_the_estimate_and_the_budget(
    metered: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = metered
    # the estimate depends on the handlers' measured time: fixed here, so its rounding is exact
    monkeypatch.setattr(pricing, "month_estimate", lambda cost, elapsed: 98.32947)
    wid = world.workspace("alice", "bob", "carol")
    world.rt.db.run(
        lambda cur: cur.execute(
            "UPDATE workspace_members SET role = 'admin' WHERE workspace_id = %s AND user_id = 'bob'", (wid,)
        )
    )
    alice, bob, carol = (world.connect(u, wid) for u in ("alice", "bob", "carol"))
    budget(world, 0.0)  # set once everyone is online: alice's next message passes it
    with caplog.at_level("WARNING"):
        alice.create("one")
    for conn in (alice, bob):  # the owner and the admin, live; not the member
        (pushed,) = conn.received("notification.created")
        note = pushed["data"]["notification"]
        assert note["type"] == "usage.over_budget"
        payload = note["payload"]
        assert set(payload) == {"month", "monthly_estimate_usd", "budget_usd"}
        assert payload["month"] == world.rt.clock.utcnow().strftime("%Y-%m") and payload["budget_usd"] == 0.0
        assert payload["monthly_estimate_usd"] == 98.3295  # to a hundredth of a cent
        assert usage_of(world, wid)["monthly_estimate_usd"] == 98.32947
    assert carol.received("notification.created") == []
    (logged,) = [r for r in caplog.records if r.getMessage() == "workspace over budget"]
    assert logged.workspace_id == wid and logged.estimate > 0
    flag = world.rt.store.r.ttl(usage._flag(wid, usage.month_of(world.rt.clock.utcnow())))
    assert usage.KEEP_S - 5 < flag <= usage.KEEP_S  # the month's flag outlives the month a little, no more


def usage_of(world: Any, wid: str) -> dict[str, Any]:
    return Api(world.rt.settings).ok("GET", f"/workspaces/{wid}/usage", "alice")


def test_heartbeats_are_metered_but_do_not_check_the_budget(metered: Any) -> None:
    """Only the message route compares the estimate with the budget: a heartbeat's flush is the
    cheapest thing a connection does, every 30 s."""
    world = metered
    wid = world.workspace("alice", "bob")
    alice = world.connect("alice", wid)  # its sync is a message: metered before any budget is set
    budget(world, 0.0)
    alice.heartbeat()
    assert usage_of(world, wid)["frames_in"] >= 1
    assert not world.rt.store.r.exists(usage._flag(wid, usage.month_of(world.rt.clock.utcnow())))


def test_without_a_budget_nothing_is_throttled(metered: Any) -> None:
    world = metered
    wid = world.workspace("alice", "bob")
    assert usage.over_budget(world.rt, wid) is False
    assert all(usage.presence_allowed(world.rt, wid, "alice") for _ in range(3))


def test_the_over_budget_flag_is_read_from_redis_and_trusted_for_under_a_minute(
    metered: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another container flagged the workspace: this one sees it once its cached answer is a
    minute old, and not before (one Redis read per workspace per minute, not per frame)."""
    world = metered
    budget(world, 5.0)
    clock = Monotonic()
    monkeypatch.setattr(usage, "time", clock)
    wid = world.workspace("alice", "bob")
    assert usage.over_budget(world.rt, wid) is False  # read, and cached
    world.rt.store.r.set(usage._flag(wid, usage.month_of(world.rt.clock.utcnow())), 1)
    clock.t += usage.FLAG_CACHE_S - 0.001
    assert usage.over_budget(world.rt, wid) is False  # the cached answer
    clock.t += 0.001  # exactly a minute old: read again
    assert usage.over_budget(world.rt, wid) is True


def test_an_over_budget_users_presence_goes_out_again_after_the_interval(metered: Any) -> None:
    world = metered
    budget(world, 5.0)
    wid = world.workspace("alice", "bob")
    world.rt.store.r.set(usage._flag(wid, usage.month_of(world.rt.clock.utcnow())), 1)
    assert usage.presence_allowed(world.rt, wid, "alice") is True
    assert usage.presence_allowed(world.rt, wid, "alice") is False
    assert usage.presence_allowed(world.rt, wid, "bob") is True  # per user
    ttl = world.rt.store.r.ttl(keys.ws(wid, "presence_throttle:alice"))
    assert 0 < ttl <= usage.PRESENCE_EVERY_S  # it frees itself after the interval


@pytest.mark.parametrize(
    ("out", "refused"),
    [
        ({"statusCode": 200, "body": '{"type":"error","data":{"code":"validation_error"}}'}, True),
        ({"statusCode": 200, "body": '{"type":"ack","data":{"request_id":"r","ok":false}}'}, True),
        ({"statusCode": 200, "body": '{"type":"ack","data":{"request_id":"r","ok":true}}'}, False),
        ({"statusCode": 200, "body": '{"type":"sync","data":{"note":"\\"ok\\":false"}}'}, False),
        ({"statusCode": 200}, False),
        (None, False),
        ('{"type":"error"}', False),  # not a route response
    ],
)
def test_a_reply_refusing_bad_input_is_not_metered(out: Any, refused: bool) -> None:
    assert usage._refused(out) is refused


def test_only_a_replys_first_400_characters_are_read() -> None:
    """The verdict is in the reply's head (type, request id, ok): a large reply is not scanned."""
    head = '{"type":"ack","data":{"request_id":"'
    late = head + "r" * (391 - 2 - len(head)) + '","ok":false}}'
    assert late.index('"ok":false') + len('"ok":false') == 401
    assert usage._refused({"body": late}) is False  # its last character is past the head
    assert usage._refused({"body": late.replace("rr", "r", 1)}) is True


def test_editing_indicators_and_presence_batches_are_metered_as_posts(metered: Any) -> None:
    from test_fanout_split import announced_peers

    from collab.domain import presence

    world = metered
    wid = world.workspace("alice", "bob", "late")
    alice, bob = world.connect("alice", wid), world.connect("bob", wid)
    task = alice.create("one")["data"]["task"]
    before = usage_of(world, wid)["posts_out"]
    editing = {"task_id": task["id"], "field": "title"}
    assert bob.send({"action": "presence.update", "status": "active", "editing": editing}) is None
    assert len(alice.received("presence.editing")) == 1
    assert usage_of(world, wid)["posts_out"] - before == 1  # the indicator, to alice
    announced_peers(world, wid, presence.LARGE_ROOM)  # a large workspace: presence is batched
    world.connect("late", wid)
    world.sink.reset()
    before = usage_of(world, wid)["posts_out"]
    world.rt.clock.advance(presence.BATCH_INTERVAL_MS / 1000)
    world.sweep()
    batches = world.sink.all("presence.batch")
    assert len(batches) == presence.LARGE_ROOM + 3
    assert usage_of(world, wid)["posts_out"] - before == len(batches)


@pytest.mark.parametrize(
    ("now", "fraction"),
    [
        # the time since the 1st at midnight, to the microsecond, over the month's own length
        ("2026-02-15T12:34:56.789012+00:00", (14 * 86400 + 45296.789012) / (28 * 86400)),
        ("2026-12-01T00:00:00+00:00", 0.0),
        ("2026-12-31T18:00:00+00:00", 30.75 / 31),
    ],
)
def test_the_estimate_scales_by_the_part_of_the_month_gone(now: str, fraction: float) -> None:
    from datetime import datetime

    assert usage._elapsed_fraction(datetime.fromisoformat(now)) == pytest.approx(
        fraction, rel=1e-15, abs=1e-15
    )


def test_a_month_without_use_is_all_zeros(metered: Any) -> None:
    wid = metered.workspace("alice")
    r = usage.report(metered.rt, wid, "2026-01")
    assert {
        k: r[k] for k in ("frames_in", "replies_out", "posts_out", "connection_minutes", "invocations")
    } == {
        "frames_in": 0,
        "replies_out": 0,
        "posts_out": 0,
        "connection_minutes": 0,
        "invocations": 0,
    }
    assert r["handler_ms"] == 0 and r["cost_to_date"]["total_usd"] == 0 and r["monthly_estimate_usd"] == 0


def test_a_past_month_is_priced_from_its_counters_and_not_projected(metered: Any) -> None:
    wid = metered.workspace("alice")
    counters = {
        "frames_in": 1000, "posts_out": 30, "heartbeats": 120, "invocations": 7, "gb_ms": 2500,
        "handler_ms": 1234.56789,
    }  # fmt: skip
    metered.rt.store.r.hset(usage._key(wid, "2026-01"), mapping=counters)
    r = usage.report(metered.rt, wid, "2026-01")
    cost = pricing.usage_cost(
        frames_in=1000, replies_out=0, posts_out=30, connection_minutes=60, invocations=7, gb_seconds=2.5
    )
    assert r["cost_to_date"] == cost and r["connection_minutes"] == 60  # a heartbeat each 30 s
    assert r["monthly_estimate_usd"] == cost["total_usd"]  # the month is over: nothing to project
    assert r["handler_ms"] == 1234.568
    # a budget is exceeded only past it
    budget(metered, cost["total_usd"])
    assert usage.report(metered.rt, wid, "2026-01")["over_budget"] is False
    budget(metered, cost["total_usd"] * 0.999)
    assert usage.report(metered.rt, wid, "2026-01")["over_budget"] is True


def test_posts_counted_by_fan_out_and_presence_do_not_check_the_budget(metered: Any) -> None:
    """``add`` checks the budget only when its caller asks (the message route): the posts that
    fan-out, presence and the fan-out function count on their own never do."""
    wid = metered.workspace("alice")
    budget(metered, 0.0)
    usage.add(metered.rt, wid, posts_out=1_000_000)
    assert usage_of(metered, wid)["posts_out"] == 1_000_000
    assert not metered.rt.store.r.exists(usage._flag(wid, usage.month_of(metered.rt.clock.utcnow())))


def test_use_is_written_at_most_every_few_seconds_per_container(
    metered: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    wid = metered.workspace("alice")
    monkeypatch.setattr(usage, "FLUSH_S", 3600.0)
    monkeypatch.setattr(usage, "_last_flush", time.monotonic())  # this container has just written
    usage.add(metered.rt, wid, frames_in=3)
    month = usage.month_of(metered.rt.clock.utcnow())
    assert not metered.rt.store.r.exists(usage._key(wid, month))  # buffered
    usage.flush(metered.rt, check_budget=False)
    assert usage_of(metered, wid)["frames_in"] == 3


def test_metering_that_fails_is_logged_and_never_raised(
    metered: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("redis said no")

    monkeypatch.setattr(usage, "_flush", broken)
    with caplog.at_level("WARNING"):
        usage.add(metered.rt, "any-workspace", frames_in=1)
    assert [r.getMessage() for r in caplog.records] == ["usage metering failed"]
