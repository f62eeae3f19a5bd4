"""API Gateway's 128 KB per WebSocket message, on every frame the server sends, with worst-case data.

Worst case by the contract's limits: titles of 200 four-byte characters (emoji), descriptions of
10,000, display names of 100, a full workspace of 50 members online, 220+ undelivered
notifications. Every route response and every posted message must fit in 128 KB (UTF-8 bytes: the
old cap counted characters); notifications in a ``sync`` are paged like events
(``more_notifications``), and only those in a reply that was answered count as delivered.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from collab.protocol.wire import MESSAGE_LIMIT
from collab_dev.permissions import call_as

EMOJI = "\U0001f600"
TITLE = EMOJI * 200  # 800 bytes
DESCRIPTION = EMOJI * 10_000  # 40,000 bytes
NAME = EMOJI * 100  # a display name at its limit


def send(conn: Any, frame: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The reply frame and its size in bytes, as API Gateway would carry it."""
    from functions.message.handler import handler

    out = call_as("message", handler, conn.event("message", json.dumps(frame)), conn.world.context)
    body = out["body"]
    return json.loads(body), len(body.encode())


def undelivered(world: Any, uid: str) -> int:
    row = world.rt.db.run(
        lambda cur: cur.execute(
            "SELECT count(*) AS n FROM notifications WHERE user_id = %s AND delivered_at IS NULL", (uid,)
        ).fetchone()
    )
    return int(row["n"])


def full_workspace(world: Any) -> tuple[str, list[str]]:
    users = [world.user(f"u{i:02d}-{'x' * 100}", NAME) for i in range(50)]
    return world.workspace(users[0], *users[1:]), users


def test_a_sync_with_50_present_and_220_long_notifications_is_paged_under_128_kb(world: Any) -> None:
    from collab.domain import tasks
    from collab.protocol.client_frames import TaskDraft

    wid, users = full_workspace(world)
    owner, bob = users[0], users[1]
    # Given 49 members online and 230 tasks assigned to bob while he was away
    online = [world.connect(u, wid) for u in users if u != bob]
    for i in range(230):
        draft = TaskDraft(title=TITLE, description=DESCRIPTION if i < 3 else "", assigned_to=bob)
        tasks.create(world.rt.db, owner, draft, workspace_id=wid)
    assert undelivered(world, bob) == 230

    # When bob connects and syncs: pages of notifications, each reply under 128 KB
    b = world.connect(bob, wid, sync=False)
    seen: list[str] = []
    pages = 0
    more = True
    while more:
        reply, size = send(b, {"action": "sync", "since": None})
        pages += 1
        assert size <= MESSAGE_LIMIT, size
        data = reply["data"]
        assert len(data["presence"]) == 50
        notes = data["notifications"]
        assert notes, "a page makes progress"
        seen += [n["id"] for n in notes]
        # only what was in a reply is delivered
        assert undelivered(world, bob) == 230 - len(seen)
        more = data["more_notifications"]
        assert pages < 20
    assert pages >= 2  # 230 notifications of ~1 KB cannot fit in one message
    assert len(seen) == len(set(seen)) == 230
    reply, _ = send(b, {"action": "sync", "since": None})
    assert reply["data"]["notifications"] == [] and reply["data"]["more_notifications"] is False

    # And a peer replaying every event from 0 gets them all, paged, each reply under 128 KB
    peer = online[5]
    since, replayed = 0, 0
    while True:
        reply, size = send(peer, {"action": "sync", "since": since})
        assert size <= MESSAGE_LIMIT, size
        events = reply["data"]["events"]
        if not events:
            break
        assert events[0]["seq"] == since + 1
        since = events[-1]["seq"]
        replayed += len(events)
    assert replayed == reply["data"]["seq"] == 230


def test_acks_and_fanned_out_events_of_the_largest_task_fit(world: Any) -> None:
    wid, users = full_workspace(world)
    conns = [world.connect(u, wid) for u in users[:5]]
    world.sink.largest = 0
    a = conns[0]
    # the largest task the contract allows (10,000 emoji do not fit a 32 KB client frame: it comes
    # over the HTTP API), created and fanned out as the api function does, then changed, refused
    # (a conflict carries the task), deleted over the WebSocket
    from collab.domain import events, tasks
    from collab.protocol.client_frames import TaskDraft

    draft = TaskDraft(title=TITLE, description=DESCRIPTION, assigned_to=users[1])
    m = tasks.create(world.rt.db, users[0], draft, workspace_id=wid)
    call_as("api", events.publish, world.rt, m.committed, world.rt.gateway_for(None))
    reply = {"data": {"task": m.task}}
    tid = reply["data"]["task"]["id"]
    changes = {"title": EMOJI * 199 + "!", "description": '"\\' * 5_000, "assigned_to": users[2]}
    reply, size = send(
        a, {"action": "task.update", "request_id": str(uuid.uuid4()), "task_id": tid, "changes": changes}
    )
    assert reply["data"]["ok"] is True and size <= MESSAGE_LIMIT
    reply, size = send(
        a,
        {
            "action": "task.update",
            "request_id": str(uuid.uuid4()),
            "task_id": tid,
            "changes": {"title": "x"},
            "base_version": 1,
        },
    )
    assert reply["data"]["error"]["code"] == "conflict" and size <= MESSAGE_LIMIT  # carries the task
    reply, size = send(a, {"action": "task.delete", "request_id": str(uuid.uuid4()), "task_id": tid})
    assert reply["data"]["ok"] is True and size <= MESSAGE_LIMIT
    assert world.sink.largest > 40_000  # the big events were posted, and fit
    assert world.sink.largest <= MESSAGE_LIMIT
    assert len(conns[1].received("task.created")) == 1


def test_a_message_over_128_kb_is_never_posted(world: Any) -> None:
    wid = world.workspace("ann", "bob")
    world.connect("ann", wid)
    b = world.connect("bob", wid)
    gateway = world.rt.gateway_for(None)
    receipt = gateway.broadcast([b.cid], b"x" * (MESSAGE_LIMIT + 1))
    assert receipt.failed == [b.cid] and not receipt.delivered
    assert gateway.broadcast([b.cid], json.dumps({"type": "x", "pad": "y" * 1000}).encode()).delivered == [
        b.cid
    ]


def test_a_sync_with_events_and_notifications_both_due_shares_one_128_kb_reply(world: Any) -> None:
    """Events take their share first; notifications get what is left of the message, not the whole
    message again: a reply holding both stays under 128 KB, and paging brings the rest."""
    from collab.domain import tasks
    from collab.protocol.client_frames import TaskDraft

    wid = world.workspace("ann", "bob")
    b = world.connect("bob", wid, sync=False)
    for i in range(203):  # two events of ~40 KB, then ~1 KB ones; a notification to bob each
        draft = TaskDraft(title=TITLE, description=DESCRIPTION if i < 2 else "", assigned_to="bob")
        tasks.create(world.rt.db, "ann", draft, workspace_id=wid)
    reply, size = send(b, {"action": "sync", "since": 0})
    data = reply["data"]
    assert size <= MESSAGE_LIMIT, size
    assert 2 < len(data["events"]) < 203 and data["notifications"], "both in one reply"
    assert data["more_notifications"] is True
    assert undelivered(world, "bob") == 203 - len(data["notifications"])
