"""The delivery tracer explains a scripted miss: a peer gone (410), a throttled post (429), a member
removed, a connection that has not synced yet; and shows the seq each connection acknowledged."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

import pytest
from test_http_helpers import Api


@pytest.fixture
def throttled(monkeypatch: pytest.MonkeyPatch, moto_endpoint: str) -> set[str]:
    """Connection ids whose posts the Management API answers 429, every time."""
    from moto.apigatewaymanagementapi.models import ApiGatewayManagementApiBackend as Backend
    from moto.core.exceptions import JsonRESTError

    class Throttled(JsonRESTError):
        code = 429

        def __init__(self) -> None:
            super().__init__("LimitExceededException", "throttled")

    ids: set[str] = set()
    captured = Backend.post_to_connection

    def post(self: Any, data: bytes, connection_id: str) -> None:
        if unquote(connection_id) in ids:
            raise Throttled()
        captured(self, data, connection_id)

    monkeypatch.setattr(Backend, "post_to_connection", post)
    return ids


def test_the_tracer_explains_who_did_not_get_an_event(world: Any, throttled: set[str]) -> None:
    # Given alice (owner) and bob, carol, dave, frank and erin in a workspace
    wid = world.workspace("alice", "bob", "carol", "dave", "frank", "erin")
    api = Api(world.rt.settings)
    alice, bob, carol, dave, frank = (
        world.connect(u, wid) for u in ("alice", "bob", "carol", "dave", "frank")
    )
    erin = world.connect("erin", wid, sync=False)  # connected, has not sent sync yet
    task = alice.create("Plan")["data"]["task"]
    # and dave was removed, then bob's connection died without a $disconnect and carol's posts are
    # throttled
    api.ok("DELETE", f"/workspaces/{wid}/members/dave", "alice")
    world.sink.gone.add(bob.cid)
    throttled.add(carol.cid)

    # When alice changes the task
    seq = alice.update(task["id"], title="Plan it")["data"]["seq"]

    # Then the tracer says, connection by connection, what happened to that event
    page = api.ok("GET", f"/workspaces/{wid}/deliveries", "alice", query={"seq": str(seq)})
    [event] = page["items"]
    assert event["seq"] == seq and event["type"] == "task.updated"
    outcome = {(c["user_id"], c["connection_id"]): c["outcome"] for c in event["connections"]}
    assert outcome == {
        ("alice", alice.cid): "sender",
        ("bob", bob.cid): "gone",
        ("carol", carol.cid): "throttled",
        ("frank", frank.cid): "delivered",
        ("erin", erin.cid): "not_synced",
        ("dave", None): "removed",
    }
    assert dave.cid not in {c["connection_id"] for c in event["connections"]}
    removed = next(c for c in event["connections"] if c["outcome"] == "removed")
    assert removed["removed_at_seq"] == seq - 1  # the member.removed event
    assert event["counts"] == {
        "sender": 1, "gone": 1, "throttled": 1, "delivered": 1, "not_synced": 1, "removed": 1,
    }  # fmt: skip
    # the earlier event, before dave's removal: dave was a target then, and bob still alive
    earlier = api.ok("GET", f"/workspaces/{wid}/deliveries", "alice", query={"seq": str(seq - 2)})["items"][0]
    assert {c["user_id"]: c["outcome"] for c in earlier["connections"]}["dave"] == "delivered"
    # all recent events, newest first
    seqs = [e["seq"] for e in api.ok("GET", f"/workspaces/{wid}/deliveries", "alice")["items"]]
    assert seqs == sorted(seqs, reverse=True) and seqs[0] == seq
    # an untraced seq is 404, with the reason
    missing = api.call("GET", f"/workspaces/{wid}/deliveries", "alice", query={"seq": "999"})
    assert missing.status == 404 and "last 100" in missing.error["message"]


def test_connections_show_synced_state_and_the_acknowledged_seq(world: Any) -> None:
    from functions.heartbeat.handler import handler

    wid = world.workspace("alice", "bob")
    api = Api(world.rt.settings)
    alice, bob = world.connect("alice", wid), world.connect("bob", wid, sync=False)
    seq = alice.create("x")["data"]["seq"]
    # a v1.2 heartbeat carrying seq is quiet: accepted, recorded, and answered with nothing
    out = handler(alice.event("heartbeat", json.dumps({"action": "heartbeat", "seq": seq})), world.context)
    assert out == {"statusCode": 200}
    # a malformed seq is ignored, the heartbeat still accepted
    out = handler(bob.event("heartbeat", '{"action": "heartbeat", "seq": "x"}'), world.context)
    assert out["statusCode"] == 200
    items = {c["connection_id"]: c for c in api.ok("GET", f"/workspaces/{wid}/connections", "alice")["items"]}
    assert items[alice.cid]["synced"] is True and items[alice.cid]["last_ack_seq"] == seq
    assert items[bob.cid]["synced"] is False and items[bob.cid]["last_ack_seq"] is None
    assert items[alice.cid]["display_name"] == "Alice" and items[alice.cid]["last_heartbeat_ms"]


@pytest.mark.parametrize(
    ("role", "status"), [("owner", 200), ("admin", 200), ("member", 403), ("outsider", 403)]
)
def test_only_owners_and_admins_read_the_tracer(world: Any, role: str, status: int) -> None:
    wid = world.workspace("alice", "bob", "carol")
    world.user("dave")
    world.rt.db.run(
        lambda cur: cur.execute(
            "UPDATE workspace_members SET role = 'admin' WHERE workspace_id = %s AND user_id = 'bob'", (wid,)
        )
    )
    user = {"owner": "alice", "admin": "bob", "member": "carol", "outsider": "dave"}[role]
    api = Api(world.rt.settings)
    for path in ("deliveries", "connections"):
        assert api.call("GET", f"/workspaces/{wid}/{path}", user).status == status, path
    assert api.call("GET", f"/workspaces/{wid}/deliveries", user, query={"seq": "0"}).status == 422
    unknown = "/workspaces/00000000-0000-4000-8000-000000000000/connections"
    assert api.call("GET", unknown, user).status == 404


def test_the_connections_list_is_sorted_named_and_forgets_the_acks_of_closed_ones(world: Any) -> None:
    from collab.adapters.redis import keys, trace

    wid = world.workspace("alice", "bob", "carol")
    bob1, alice, bob2 = world.connect("bob", wid), world.connect("alice", wid), world.connect("bob", wid)
    carol = world.connect("carol", wid)
    seq = alice.create("x")["data"]["seq"]
    for conn in (alice, bob1, bob2):
        trace.acknowledge(world.rt.store.r, wid, conn.cid, seq)
    world.rt.store.r.delete(
        keys.conn(bob2.cid)
    )  # its record expired (3 h) before the sweep: the id stands in
    bob1.disconnect()
    items = Api(world.rt.settings).ok("GET", f"/workspaces/{wid}/connections", "alice")["items"]
    assert [(c["user_id"], c["connection_id"]) for c in items] == sorted(
        [("alice", alice.cid), ("bob", bob2.cid), ("carol", carol.cid)]
    )
    assert all(c["last_heartbeat_ms"] for c in items)  # each one's deadline, however many there are
    by_id = {c["connection_id"]: c for c in items}
    assert by_id[bob2.cid]["display_name"] == "bob" and by_id[alice.cid]["display_name"] == "Alice"
    assert by_id[bob2.cid]["connected_at_ms"] is None
    assert isinstance(by_id[alice.cid]["connected_at_ms"], int) and by_id[alice.cid]["connected_at_ms"] > 0
    assert set(world.rt.store.r.hkeys(keys.ws(wid, "acks"))) == {alice.cid.encode(), bob2.cid.encode()}


def test_an_untraced_seq_says_how_far_back_the_tracer_looks(world: Any) -> None:
    wid = world.workspace("alice")
    missing = Api(world.rt.settings).call("GET", f"/workspaces/{wid}/deliveries", "alice", query={"seq": "7"})
    assert missing.status == 404
    assert missing.error["message"] == "seq 7 is not traced: only the workspace's last 100 events are"


def test_a_failure_to_trace_is_logged_and_the_event_still_goes_out(
    world: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from collab.adapters.redis import trace

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("redis said no")

    wid = world.workspace("alice", "bob")
    alice, bob = world.connect("alice", wid), world.connect("bob", wid)
    monkeypatch.setattr(trace, "record", broken)
    with caplog.at_level("WARNING"):
        seq = alice.create("traced or not")["data"]["seq"]
    assert [e["seq"] for e in bob.received("task.created")] == [seq]
    (logged,) = [r for r in caplog.records if r.getMessage() == "tracing a fan-out failed"]
    assert (logged.workspace_id, logged.seq) == (wid, seq)


def test_a_removal_event_without_its_member_traces_no_removed_user(world: Any) -> None:
    from collab.adapters.apigw.management import Receipt
    from collab.adapters.redis import trace
    from collab.domain import tracer

    wid = world.workspace("alice")
    event = {"seq": 1, "type": "member.removed", "timestamp": "2026-12-04T00:00:00.000Z", "data": {}}
    tracer.on_fanout(world.rt, wid, event, Receipt(), None)
    records, removed = trace.traces(world.rt.store.r, wid, 1)
    assert [r["seq"] for r in records] == [1] and removed == {}
    event = {**event, "seq": 2, "data": {"member": {"user_id": "bob"}}}
    tracer.on_fanout(world.rt, wid, event, Receipt(), None)
    assert trace.traces(world.rt.store.r, wid, 2)[1] == {"bob": 2}


def test_a_removed_member_shows_from_the_removal_on_and_not_before(world: Any) -> None:
    """gina never connected: she appears as ``removed`` in the trace of her removal and of later
    events, and in none before it."""
    from collab.clock import iso
    from collab.domain import tracer

    wid = world.workspace("alice", "gina")
    api = Api(world.rt.settings)
    alice = world.connect("alice", wid)
    before = alice.create("x")["data"]["seq"]
    api.ok("DELETE", f"/workspaces/{wid}/members/gina", "alice")
    after = alice.create("y")["data"]["seq"]
    logged = world.rt.db.run(
        lambda cur: cur.execute(
            "SELECT created_at FROM activity WHERE workspace_id = %s AND seq = %s", (wid, after)
        ).fetchone()
    )
    page = tracer.deliveries(world.rt, "alice", wid)
    assert set(page) == {"items", "next_cursor"} and page["next_cursor"] is None
    by_seq = {e["seq"]: e for e in page["items"]}
    assert sorted(by_seq) == [before, before + 1, after] and by_seq[before + 1]["type"] == "member.removed"
    gone = {"connection_id": None, "user_id": "gina", "outcome": "removed", "removed_at_seq": before + 1}
    for seq in (before + 1, after):
        assert [c for c in by_seq[seq]["connections"] if c["user_id"] == "gina"] == [gone], seq
    assert [c["user_id"] for c in by_seq[before]["connections"]] == ["alice"]
    assert by_seq[after]["timestamp"] == iso(logged["created_at"])  # the event's own time
    listed = tracer.connections(world.rt, "alice", wid)
    assert set(listed) == {"items", "next_cursor"} and listed["next_cursor"] is None
    assert [c["connection_id"] for c in listed["items"]] == [alice.cid]
