"""Removing a member over HTTP closes their connections at API Gateway before the ``member.removed``
event fans out, so they hear nothing from the workspace afterwards. The Management API is moto in
server mode (see tests/integration/conftest.py): our signed ``execute-api`` requests to
``{endpoint}/@connections/{id}`` reach its backend, whose methods are patched to capture each call."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

import pytest
from test_http_helpers import Api, member_path


@pytest.fixture
def timeline(world: Any, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    """Every Management API call in order: ("delete", cid, "") or ("post", cid, frame type)."""
    from moto.apigatewaymanagementapi.models import ApiGatewayManagementApiBackend as Backend

    calls: list[tuple[str, str, str]] = []
    post, delete = Backend.post_to_connection, Backend.delete_connection

    def record_post(self: Any, data: bytes, connection_id: str) -> Any:
        calls.append(("post", unquote(connection_id), json.loads(data)["type"]))
        return post(self, data, connection_id)

    def record_delete(self: Any, connection_id: str) -> Any:
        calls.append(("delete", unquote(connection_id), ""))
        return delete(self, connection_id)

    monkeypatch.setattr(Backend, "post_to_connection", record_post)
    monkeypatch.setattr(Backend, "delete_connection", record_delete)
    return calls


def test_a_removed_member_is_closed_first_and_hears_nothing_after(world, settings, timeline):
    api = Api(settings)
    wid = api.workspace("alice")
    for user in ("bob", "carol"):
        api.add("alice", wid, user)
    other = api.workspace("bob", "Elsewhere")
    alice, bob1, bob2, carol = (world.connect(u, wid) for u in ("alice", "bob", "bob", "carol"))
    bob_elsewhere = world.connect("bob", other)
    timeline.clear()

    assert api.call("DELETE", member_path(wid, "bob"), "alice").status == 204

    deleted = [cid for kind, cid, _ in timeline if kind == "delete"]
    assert sorted(deleted) == sorted([bob1.cid, bob2.cid])
    told = [cid for kind, cid, type_ in timeline if type_ == "member.removed"]
    assert sorted(told) == sorted([alice.cid, carol.cid])
    last_delete = max(i for i, call in enumerate(timeline) if call[0] == "delete")
    first_event = min(i for i, call in enumerate(timeline) if call[2] == "member.removed")
    assert last_delete < first_event  # closed before the event went out
    assert [f["type"] for f in bob_elsewhere.received()] == ["notification.created"]
    assert bob_elsewhere.received()[0]["data"]["notification"]["type"] == "member.removed"
    assert not [call for call in timeline if call[0] == "post" and call[1] in (bob1.cid, bob2.cid)]
    assert set(world.rt.store.workspace_connections(wid)) == {alice.cid, carol.cid}
    assert world.rt.store.user_connections("bob") == {bob_elsewhere.cid: other}

    timeline.clear()
    task = api.ok("POST", f"/workspaces/{wid}/tasks", "alice", {"title": "After"})  # over HTTP
    carol.create("From carol")  # and over the WebSocket
    reached = {(cid, type_) for kind, cid, type_ in timeline if kind == "post"}
    assert reached == {
        (alice.cid, "task.created"),
        (carol.cid, "task.created"),  # alice's HTTP create: carol is a peer
    }
    assert [e["data"]["task"]["id"] for e in carol.received("task.created")] == [task["id"]]
    assert len(alice.received("task.created")) == 2
    assert not any(cid in (bob1.cid, bob2.cid, bob_elsewhere.cid) for _, cid, _ in timeline)


def test_deleting_a_workspace_closes_every_connection_to_it(world, settings, timeline):
    api = Api(settings)
    wid = api.workspace("alice")
    api.add("alice", wid, "bob")
    other = api.workspace("bob", "Elsewhere")
    alice, bob = world.connect("alice", wid), world.connect("bob", wid)
    bob_elsewhere = world.connect("bob", other)
    timeline.clear()

    assert api.call("DELETE", f"/workspaces/{wid}", "alice").status == 204

    assert sorted(cid for kind, cid, _ in timeline if kind == "delete") == sorted([alice.cid, bob.cid])
    assert [call for call in timeline if call[0] == "post"] == []
    assert world.rt.store.workspace_connections(wid) == {}
    assert world.rt.store.history(wid, 0) == []
    assert world.rt.store.user_connections("bob") == {bob_elsewhere.cid: other}


def test_deleting_a_workspace_closes_connections_this_container_never_cached(world, settings, timeline):
    """The HTTP function's container knows bob's connection only from Redis (it was opened through
    another container, or this one's cache was cleared at its cap): closing it must not depend on
    the per-container cache."""
    api = Api(settings)
    wid = api.workspace("alice")
    api.add("alice", wid, "bob")
    alice, bob = world.connect("alice", wid), world.connect("bob", wid)
    assert alice.create("in the history")["data"]["ok"] is True
    world.rt.connections.pop(bob.cid, None)
    timeline.clear()

    assert api.call("DELETE", f"/workspaces/{wid}", "alice").status == 204

    assert sorted(cid for kind, cid, _ in timeline if kind == "delete") == sorted([alice.cid, bob.cid])
    assert world.rt.store.workspace_connections(wid) == {} and alice.cid not in world.rt.connections
    assert world.rt.store.history(wid, 0) == [] and world.rt.store.presence(wid) == {}


def test_a_role_change_reaches_the_member_live_as_a_notification(world, settings):
    """Stored and pushed: bob, online, is told at once that his role changed (and the others only
    see the workspace event)."""
    api = Api(settings)
    wid = api.workspace("alice")
    api.add("alice", wid, "bob")
    alice, bob = world.connect("alice", wid), world.connect("bob", wid)
    world.sink.reset()

    api.ok("PATCH", member_path(wid, "bob"), "alice", {"role": "admin"})

    (pushed,) = bob.received("notification.created")
    note = pushed["data"]["notification"]
    assert (note["type"], note["payload"]["role"], note["payload"]["previous_role"]) == (
        "member.role_changed",
        "admin",
        "member",
    )
    assert alice.received("notification.created") == []
    assert [f["type"] for f in alice.received()] == ["member.role_changed"]


def test_being_added_reaches_the_user_live_on_their_other_workspaces_connection(world, settings):
    """bob is not yet in alice's workspace, so the notification is the only way he learns of it
    while online elsewhere."""
    api = Api(settings)
    wid = api.workspace("alice")
    own = api.workspace("bob", "Bob's")
    bob = world.connect("bob", own)
    world.sink.reset()

    api.ok("POST", f"/workspaces/{wid}/members", "alice", {"user_id": "bob", "role": "admin"})

    (pushed,) = bob.received("notification.created")
    note = pushed["data"]["notification"]
    assert (note["type"], note["workspace_id"], note["payload"]["role"]) == ("member.added", wid, "admin")
