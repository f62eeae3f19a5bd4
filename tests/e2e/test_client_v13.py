"""@collab/client's v1.3 side against a scripted server (the harness of test_client_protocol.py):
`seen_version` on updates, the `ack`'s receipt and `task.overwritten` as events, the undo/redo
stack and its refusal, editing indicators (sent, refreshed, shown until they expire, dropped on
`presence.left`), and the IndexedDB outbox restoring unanswered changes in order.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e import test_client_protocol
from tests.e2e.test_client_protocol import TASK, WAIT_MS, Harness, presence_event, reply, task

client = test_client_protocol.client  # the scripted-server fixture

pytestmark = pytest.mark.e2e

BOB = {"id": "bob", "display_name": "Bob"}


def record(client: Harness, *names: str) -> None:
    client.js(
        """(names) => { window.__v13 = [];
          for (const n of names) window.client.on(n, (d) => window.__v13.push({ name: n, detail: JSON.parse(JSON.stringify(d)) })); }""",
        list(names),
    )


def events(client: Harness) -> list[dict[str, Any]]:
    return list(client.js("window.__v13"))


def last_frame(client: Harness, action: str) -> dict[str, Any]:
    client.wait_sent(f"f.action === '{action}'")
    return [f for f in client.sent() if f["action"] == action][-1]


def test_an_update_carries_seen_version_and_its_receipt_is_an_event_with_an_undoable_seq(
    client: Harness,
) -> None:
    client.start()
    client.go_live(seq=5)
    record(client, "overwrote", "acked")
    client.js("(id) => void window.client.updateTask(id, { status: 'done' })", TASK)
    update = last_frame(client, "task.update")
    assert update["seen_version"] == 2  # the committed version held when the change was made
    overwrote = [
        {"field": "status", "value": "in_progress", "by": BOB, "version": 3, "at": "2026-01-01T00:00:05Z"}
    ]
    client.deliver(
        reply(
            "ack",
            {
                "request_id": update["request_id"],
                "ok": True,
                "task": task(4, status="done"),
                "seq": 7,
                "overwrote": overwrote,
            },
        )
    )
    got = events(client)
    assert [e["name"] for e in got] == ["acked", "overwrote"]
    assert got[1]["detail"]["seq"] == 7 and got[1]["detail"]["overwrote"] == overwrote
    assert client.js("window.client.getSnapshot().undoStack") == [7]

    # An explicit seenVersion is sent as given; an ack without overwrites is no receipt.
    client.js("(id) => void window.client.updateTask(id, { title: 'x' }, { seenVersion: 3 })", TASK)
    second = last_frame(client, "task.update")
    assert second["seen_version"] == 3
    client.deliver(
        reply(
            "ack",
            {
                "request_id": second["request_id"],
                "ok": True,
                "task": task(5, title="x"),
                "seq": 8,
                "overwrote": [],
            },
        )
    )
    assert [e["name"] for e in events(client)] == ["acked", "overwrote", "acked"]
    assert client.js("window.client.getSnapshot().undoStack") == [7, 8]


def test_undo_last_moves_to_redo_and_a_conflict_drops_it_and_adopts_the_task(client: Harness) -> None:
    client.start()
    client.go_live(seq=5)
    record(client, "rejected")
    client.js("(id) => void window.client.updateTask(id, { title: 'mine' })", TASK)
    update = last_frame(client, "task.update")
    client.deliver(
        reply(
            "ack", {"request_id": update["request_id"], "ok": True, "task": task(3, title="mine"), "seq": 6}
        )
    )

    client.js("() => { window.__undo = window.client.undoLast() }")
    undo = last_frame(client, "task.undo")
    assert undo["seq"] == 6
    client.deliver(
        reply("ack", {"request_id": undo["request_id"], "ok": True, "task": task(4, title="Title"), "seq": 7})
    )
    client.page.wait_for_function("window.client.getSnapshot().redoStack.length === 1", timeout=WAIT_MS)
    assert client.js("window.client.getSnapshot().undoStack") == [] and client.held()["title"] == "Title"  # type: ignore[index]

    client.js("() => void window.client.redoLast()")
    redo = last_frame(client, "task.redo")
    assert redo["seq"] == 6
    moved_on = task(
        6, title="Bob's", fields={"title": {"by": "bob", "version": 6, "at": "2026-01-01T00:00:09Z"}}
    )
    error = {"code": "conflict", "message": "the title changed since", "task": moved_on}
    client.deliver(reply("ack", {"request_id": redo["request_id"], "ok": False, "error": error}))
    client.page.wait_for_function("window.__v13.length === 1", timeout=WAIT_MS)
    [rejected] = events(client)
    assert rejected["detail"]["action"] == "task.redo" and rejected["detail"]["error"]["code"] == "conflict"
    assert client.js("window.client.getSnapshot().redoStack") == []
    assert client.js("window.client.getSnapshot().undoStack") == []
    assert client.held()["title"] == "Bob's"  # type: ignore[index]
    # Nothing left: undo does nothing and sends nothing.
    before = len(client.sent())
    assert client.js("() => window.client.undoLast()") is None and len(client.sent()) == before


def test_task_overwritten_applies_the_task_and_is_an_event(client: Harness) -> None:
    client.start()
    client.go_live(seq=5)
    record(client, "overwritten")
    data = {
        "task": task(9, status="done"),
        "seq": 9,
        "by": BOB,
        "fields": [{"field": "status", "value": "in_progress", "version": 8, "at": "2026-01-01T00:00:05Z"}],
    }
    client.deliver(reply("task.overwritten", data))
    assert events(client) == [{"name": "overwritten", "detail": data}]
    assert client.held()["status"] == "done"  # type: ignore[index]
    assert client.js("window.client.lastSeq") == 5  # a notice, not an event: no seq taken


def test_editing_is_sent_on_focus_refreshed_sparingly_and_cleared_and_others_expire(client: Harness) -> None:
    client.start()
    client.go_live(seq=5)
    target = {"task_id": TASK, "field": "title"}
    client.js("(t) => window.client.setEditing(t)", target)
    client.js("(t) => window.client.setEditing(t)", target)  # typing: a refresh within 5 s is not sent
    client.js("() => window.client.setEditing(null)")
    frames = [f for f in client.sent() if f["action"] == "presence.update"]
    assert [f.get("editing") for f in frames] == [target, None]
    assert all(f["status"] == "active" and "viewing" in f for f in frames)

    # Others' indicators: from presence.editing, until expires_at, and gone on presence.left.
    # Both delivered and read in one turn of the page (a loaded machine cannot age Bob's in between).
    shown = "() => window.client.getSnapshot().editing.map((e) => e.user.id + ':' + e.field).sort()"
    both = client.js(
        """([task, shown]) => {
          const at = (ms) => new Date(Date.now() + ms).toISOString();
          const frame = (user, field, ms) => ({ type: 'presence.editing', workspace_id: 'w', user_id: user.id,
            timestamp: at(0), data: { user, editing: { task_id: task, field, expires_at: at(ms) } } });
          const socket = window.__sockets.at(-1);
          socket.deliver(frame({ id: 'bob', display_name: 'Bob' }, 'title', 1500));
          socket.deliver(frame({ id: 'carol', display_name: 'Carol' }, 'description', 14000));
          return (0, eval)(shown)();
        }""",
        [TASK, shown],
    )
    assert both == ["bob:title", "carol:description"]
    client.page.wait_for_function("window.client.getSnapshot().editing.length === 1", timeout=WAIT_MS)
    assert client.js(shown) == ["carol:description"]  # Bob's expired
    client.deliver(presence_event("presence.left", "carol", "2026-01-01T00:00:09.000Z"))
    assert client.js(shown) == []


def test_unanswered_changes_survive_a_new_client_in_order_and_are_resent_with_their_request_ids(
    client: Harness,
) -> None:
    client.start(outbox=True)
    client.go_live(seq=5)
    client.js("(id) => void window.client.updateTask(id, { title: 'one' })", TASK)
    client.js("(id) => void window.client.updateTask(id, { priority: 'high' })", TASK)
    client.wait_sent("f.action === 'task.update' && f.changes.priority === 'high'")
    sent = [f for f in client.sent() if f["action"] == "task.update"]
    client.js("window.client.persisted()")
    client.js("window.client.stop()")

    # A new page (another client object on the same IndexedDB) sends them first, in order, as they were.
    before = client.sockets()
    client.js(
        """async () => {
          const { CollabClient } = await import('/collab-client.js');
          const c = new CollabClient({ token: window.client._token, workspaceId: window.client.workspaceId, outbox: true });
          window.client = c;
          c.start();
        }"""
    )
    # its own socket, not the stopped client's (which sent a sync too): it opens only after the ticket
    # request and the outbox's restore, so under load `at(-1)` can still be the old one
    client.page.wait_for_function("(n) => window.__sockets.length > n", arg=before, timeout=WAIT_MS)
    client.wait_sent("f.action === 'sync'")
    client.go_live(seq=5)
    client.wait_sent("f.action === 'task.update' && f.changes.priority === 'high'")
    resent = [f for f in client.sent() if f["action"] == "task.update"]
    assert resent == sent
    for frame, seq in zip(resent, (6, 7), strict=True):
        client.deliver(
            reply("ack", {"request_id": frame["request_id"], "ok": True, "task": task(seq), "seq": seq})
        )
    client.js("window.client.persisted()")
    assert client.js("window.client.pendingOps") == 0
    stored = "async () => (await new (await import('/collab-client.js')).IndexedDbOutbox().list(window.client.workspaceId, 'me')).length"
    assert client.js(stored) == 0
