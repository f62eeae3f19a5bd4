"""Every WebSocket route's paths under the permissions of collab_dev.permissions, as AWS enforces them.

The harness signs each function's Management API calls with the function's own key and answers 403
to a function whose role may not post (tests/integration/conftest.py); here, in addition, Postgres
and Redis refuse a function whose row does not grant them. One scenario walks every path that posts
or queries: connect, sync (presence.joined), a mutation with a notification, presence.update,
notification.read, heartbeat sweeping a dead peer, the sweeper, and $disconnect's presence.left.
Today's grants must pass it; the grant $disconnect lacked made it fail (403 on presence.left).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from collab_dev.permissions import PERMISSIONS, Permissions, current_function


class Guarded:
    """An adapter that refuses use from a function whose permissions do not include it."""

    def __init__(self, inner: Any, need: str, used: list[tuple[str, str]]) -> None:
        self._inner, self._need, self._used = inner, need, used

    def __getattr__(self, name: str) -> Any:
        function = current_function()
        if function is not None:
            self._used.append((function, self._need))
            if not getattr(PERMISSIONS[function], self._need):
                raise AssertionError(f"{function} uses {self._need} without the permission")
        return getattr(self._inner, name)


def presence_users(frames: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(f["type"], f["data"]["user"]["id"]) for f in frames if f["type"].startswith("presence.")]


def test_every_route_path_runs_with_only_its_functions_permissions(world: Any) -> None:
    used: list[tuple[str, str]] = []
    rt = world.rt
    rt.__dict__["db"] = Guarded(rt.db, "postgres", used)
    rt.__dict__["store"] = Guarded(rt.store, "redis", used)
    wid = world.workspace("ann", "bob", "cat", "dan")

    # Given ann, bob and cat online (connect, sync: presence.joined to the others)
    ann, bob, cat = world.connect("ann", wid), world.connect("bob", wid), world.connect("cat", wid)
    assert presence_users(ann.received()) == [("presence.joined", "bob"), ("presence.joined", "cat")]
    # When bob assigns ann a task (fan-out to ann and cat, notification.created to ann)
    task = bob.create("for ann", assigned_to="ann")["data"]["task"]
    assert [f["data"]["task"]["id"] for f in cat.received("task.created")] == [task["id"]]
    note = ann.received("notification.created")[0]["data"]["notification"]
    # ...ann reads it, says what she views, and heartbeats
    read = ann.send(
        {"action": "notification.read", "request_id": str(uuid.uuid4()), "notification_ids": [note["id"]]}
    )
    assert read is not None and read["data"]["notification_ids"] == [note["id"]]
    assert ann.send({"action": "presence.update", "status": "active", "viewing": task["id"]}) is None
    assert ("presence.updated", "ann") in presence_users(bob.received())
    # cat goes silent; ann's and bob's heartbeats 90 s later find her dead (DELETE, presence.left)
    for _ in range(3):
        rt.clock.advance(30)
        assert ann.heartbeat()["type"] == "heartbeat.ack"
        assert bob.heartbeat()["type"] == "heartbeat.ack"
    assert cat.cid in world.sink.deleted
    assert ("presence.left", "cat") in presence_users(bob.received())
    # dan connects and goes silent; the sweeper closes him
    dan = world.connect("dan", wid)
    rt.clock.advance(59)
    ann.heartbeat(), bob.heartbeat()
    rt.clock.advance(2)
    assert world.sweep()["removed"] == 1
    assert ("presence.left", "dan") in presence_users(ann.received())
    # Then bob closes his tab: $disconnect tells ann (the post that was a 403 in AWS)
    bob.disconnect()
    assert presence_users(ann.received())[-1] == ("presence.left", "bob")

    assert not world.sink.denied
    ran = {function for function, _ in used}
    assert ran == {"connect", "message", "heartbeat", "sweeper", "disconnect"}
    assert dan.cid in world.sink.deleted


@pytest.mark.parametrize("name", sorted(PERMISSIONS))
def test_each_function_row_grants_secrets_only_for_what_it_reaches(name: str) -> None:
    p: Permissions = PERMISSIONS[name]
    assert ("db" in p.secrets) == p.postgres and ("redis" in p.secrets) == p.redis
    assert ("jwt" in p.secrets) == p.jwt
