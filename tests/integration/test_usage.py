"""The cost meter: a scripted session's frames, posts, connection minutes and handler time, priced
by the model of bench/cost.py; over the budget, presence is throttled first and the admins told."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from test_http_helpers import Api

from collab import pricing


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
    bob.send(
        {
            "action": "task.update",
            "request_id": str(uuid.uuid4()),
            "task_id": task["id"],
            "changes": {"status": "done"},
        }
    )
    before = Api(world.rt.settings).ok("GET", f"/workspaces/{wid}/usage", "alice")["posts_out"]
    ack = alice.send(
        {
            "action": "task.update",
            "request_id": str(uuid.uuid4()),
            "task_id": task["id"],
            "changes": {"status": "todo"},
            "seen_version": 1,
        }
    )
    assert ack is not None and [o["field"] for o in ack["data"]["overwrote"]] == ["status"]
    assert len(bob.received("task.overwritten")) == 1
    after = Api(world.rt.settings).ok("GET", f"/workspaces/{wid}/usage", "alice")["posts_out"]
    assert after - before == 2  # task.updated to bob, and the notice
