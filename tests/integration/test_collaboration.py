"""Contract v1.3 over the real handlers, Postgres and Redis: field provenance, conflict receipts and
``task.overwritten``, undo and redo, task history, editing indicators, merged descriptions.

Each refusal also checks that nothing changed: the task's version, the workspace's seq."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import pytest
from test_http_helpers import Api
from test_interleavings import InThread, wait_until_a_transaction_waits_for_a_lock

from collab.clock import iso


def rid() -> str:
    return str(uuid.uuid4())


def update(conn: Any, task_id: str, seen: int | None = None, **changes: Any) -> dict[str, Any]:
    reply = conn.update(task_id, seen_version=seen, **changes)
    assert reply["type"] == "ack"
    return dict(reply["data"])


def undo(conn: Any, seq: int, *, redo: bool = False, request_id: str | None = None) -> dict[str, Any]:
    reply = conn.send(
        {"action": "task.redo" if redo else "task.undo", "request_id": request_id or rid(), "seq": seq}
    )
    assert reply is not None and reply["type"] == "ack"
    return dict(reply["data"])


def state(world: Any, wid: str, task_id: str) -> tuple[int, int, dict[str, Any]]:
    """(task version, workspace last seq, the task row): what a refusal must leave as it was."""

    def tx(cur: Any) -> tuple[int, int, dict[str, Any]]:
        task = cur.execute("SELECT * FROM tasks WHERE id = %s", (task_id,)).fetchone()
        seq = cur.execute("SELECT last_seq FROM workspaces WHERE id = %s", (wid,)).fetchone()["last_seq"]
        return int(task["version"]), int(seq), dict(task)

    return world.rt.db.run(tx)


@pytest.fixture
def board(world: Any) -> Any:
    """ann, bob and carol in one workspace, each connected; one task created by ann."""
    wid = world.workspace("ann", "bob", "carol")
    a, b, c = (world.connect(u, wid) for u in ("ann", "bob", "carol"))
    task = a.create("Write the notes", description="Intro.\n\nBody.\n\nEnd.")["data"]["task"]
    world.sink.reset()
    return wid, a, b, c, task


# -- field provenance ---------------------------------------------------------------------------
def test_provenance_marks_who_changed_each_field_at_which_version_and_only_real_changes(board, world):
    _wid, a, b, _, task = board
    assert task["fields"] == {}  # a new task: every field as created (by created_by, version 1)
    t = update(b, task["id"], status="in_progress", title=task["title"])["task"]  # title unchanged
    assert set(t["fields"]) == {"status"}
    mark = t["fields"]["status"]
    assert mark["by"] == "bob" and mark["version"] == 2 == t["version"]
    assert mark["at"] == t["updated_at"]
    t = update(a, task["id"], priority="high")["task"]
    assert t["fields"]["status"]["by"] == "bob" and t["fields"]["priority"] == {
        "by": "ann",
        "version": 3,
        "at": t["updated_at"],
    }
    # peers' events and HTTP reads carry the same provenance
    (ev,) = b.received("task.updated")
    assert ev["data"]["task"]["fields"] == t["fields"]
    got = Api(world.rt.settings).ok("GET", f"/tasks/{task['id']}", "carol")
    assert got["fields"] == t["fields"]


# -- conflict receipts ----------------------------------------------------------------------------
def test_a_concurrent_edit_gets_a_receipt_and_the_overwritten_user_hears_of_it(board, world):
    _wid, a, b, c, task = board
    update(b, task["id"], status="in_progress", seen=1)  # bob, from version 1
    world.sink.reset()
    ack = update(a, task["id"], status="done", priority="high", seen=1)  # ann also looked at version 1
    assert ack["ok"] is True and ack["task"]["status"] == "done"
    (item,) = ack["overwrote"]  # status only: priority was nobody's change since version 1
    assert item["field"] == "status" and item["value"] == "in_progress"
    assert item["by"] == {"id": "bob", "display_name": "Bob"} and item["version"] == 2
    (note,) = b.received("task.overwritten")
    assert note["user_id"] == "ann" and "seq" not in note  # not a workspace event: not replayed
    data = note["data"]
    assert data["by"] == {"id": "ann", "display_name": "Ann"} and data["seq"] == ack["seq"]
    assert data["task"]["version"] == ack["task"]["version"]
    assert [(f["field"], f["value"], f["version"]) for f in data["fields"]] == [("status", "in_progress", 2)]
    assert c.received("task.overwritten") == [] and a.received("task.overwritten") == []


def test_no_receipt_item_for_what_the_user_had_seen_or_changed_themselves(board, world):
    _wid, a, b, _, task = board
    update(b, task["id"], status="in_progress")
    assert update(a, task["id"], status="done", seen=2)["overwrote"] == []  # ann had seen bob's change
    assert update(a, task["id"], status="todo", seen=1)["overwrote"] == []  # her own change since
    assert "overwrote" not in update(b, task["id"], status="done")  # without seen_version: v1.1's ack
    assert b.received("task.overwritten") == []


def test_an_overwritten_change_older_than_60_seconds_is_in_the_receipt_but_not_told(board, world):
    _wid, a, b, _, task = board
    update(b, task["id"], title="Bob's title")
    world.rt.db.run(  # bob's change, two minutes ago
        lambda cur: cur.execute(
            "UPDATE tasks SET fields = jsonb_set(fields, '{title,at}', to_jsonb(now() - interval '2 minutes'))"
            " WHERE id = %s",
            (task["id"],),
        )
    )
    world.sink.reset()
    ack = update(a, task["id"], title="Ann's title", seen=1)
    assert [i["value"] for i in ack["overwrote"]] == ["Bob's title"]
    assert b.received("task.overwritten") == []


def test_base_version_keeps_its_meaning_next_to_seen_version(board, world):
    wid, a, b, _, task = board
    update(b, task["id"], status="in_progress")
    before = state(world, wid, task["id"])
    reply = a.send(
        {
            "action": "task.update",
            "request_id": rid(),
            "task_id": task["id"],
            "changes": {"status": "done"},
            "base_version": 1,
            "seen_version": 1,
        }
    )
    error = reply["data"]["error"]
    assert (error["code"], error["message"]) == ("conflict", "the task changed since base_version")
    assert (error["task"]["version"], error["task"]["status"]) == (2, "in_progress")  # the current task
    assert state(world, wid, task["id"])[:2] == before[:2]


def test_a_receipt_item_and_its_notice_in_full_past_a_field_of_ones_own(board, world):
    """Fields are judged one by one: ann's own title change since version 1 is passed over, bob's
    status after it is in the receipt, with when he made it; the notice is the workspace's and
    carries the same item without ``by`` (the notice says who: ann)."""
    wid, a, b, _, task = board
    update(a, task["id"], title="Ann's")  # v2: ann's own change, after the version she saw
    bobs = update(b, task["id"], status="in_progress")["task"]  # v3
    world.sink.reset()
    ack = update(a, task["id"], seen=1, title="Ann's again", status="done")
    (item,) = ack["overwrote"]
    at = iso(datetime.fromisoformat(bobs["fields"]["status"]["at"]))  # the protocol's form: to the ms
    assert item == {
        "field": "status",
        "value": "in_progress",
        "by": {"id": "bob", "display_name": "Bob"},
        "version": 3,
        "at": at,
    }
    (note,) = b.received("task.overwritten")
    assert (note["workspace_id"], note["user_id"]) == (wid, "ann")
    assert note["data"]["fields"] == [{"field": "status", "value": "in_progress", "version": 3, "at": at}]


def test_a_receipt_names_an_author_without_a_display_name_by_their_id(board, world):
    _wid, a, b, _, task = board
    update(b, task["id"], status="in_progress")
    world.rt.db.run(lambda cur: cur.execute("UPDATE users SET display_name = '' WHERE id = 'bob'"))
    (item,) = update(a, task["id"], seen=1, status="done")["overwrote"]
    assert item["by"] == {"id": "bob", "display_name": "bob"}


@pytest.mark.parametrize("bad", [0, -1, "x", 1.5])
def test_a_bad_seen_version_is_refused_and_changes_nothing(board, world, bad):
    wid, a, _, _, task = board
    before = state(world, wid, task["id"])
    reply = a.send(
        {"action": "task.update", "request_id": rid(), "task_id": task["id"], "changes": {"status": "done"},
         "seen_version": bad}
    )  # fmt: skip
    err = reply["data"]["error"]
    assert err["code"] == "validation_error" and err["field"] == "seen_version"
    assert state(world, wid, task["id"])[:2] == before[:2]


# -- undo and redo --------------------------------------------------------------------------------
def test_undo_reverts_the_fields_of_ones_own_change_and_redo_applies_them_again(board, world):
    _wid, a, b, _, task = board
    change = update(a, task["id"], title="Renamed", priority="urgent")
    update(b, task["id"], status="done")  # another field: does not stand in the way
    world.sink.reset()
    undone = undo(a, change["seq"])
    assert undone["ok"] is True and undone["seq"] == change["seq"] + 2
    t = undone["task"]
    assert (t["title"], t["priority"], t["status"]) == ("Write the notes", "medium", "done")
    assert t["fields"]["title"]["by"] == "ann" and t["fields"]["title"]["version"] == t["version"]
    (ev,) = b.received("task.updated")  # a normal change: peers get its event
    assert ev["seq"] == undone["seq"] and ev["data"]["task"]["title"] == "Write the notes"
    redone = undo(a, change["seq"], redo=True)
    assert (redone["task"]["title"], redone["task"]["priority"]) == ("Renamed", "urgent")
    assert redone["seq"] == undone["seq"] + 1
    again = undo(a, change["seq"])  # undo after redo: allowed again
    assert again["ok"] is True and again["task"]["title"] == "Write the notes"


def test_undo_is_refused_with_the_current_task_when_a_field_moved_on(board, world):
    wid, a, b, _, task = board
    change = update(a, task["id"], title="Ann's")
    update(b, task["id"], title="Bob's")
    before = state(world, wid, task["id"])
    world.sink.reset()
    out = undo(a, change["seq"])
    assert out["ok"] is False and out["error"]["code"] == "conflict"
    assert out["error"]["task"]["title"] == "Bob's" and out["error"]["task"]["version"] == before[0]
    assert state(world, wid, task["id"]) == before  # nothing changed
    assert b.received() == []


def test_undo_twice_and_redo_of_what_is_not_undone_are_conflicts(board, world):
    wid, a, _, _, task = board
    change = update(a, task["id"], status="done")
    assert undo(a, change["seq"], redo=True)["error"]["code"] == "conflict"
    assert undo(a, change["seq"])["ok"] is True
    before = state(world, wid, task["id"])
    assert undo(a, change["seq"])["error"]["code"] == "conflict"
    assert state(world, wid, task["id"]) == before


def test_redo_is_refused_when_a_field_moved_on_after_the_undo(board, world):
    wid, a, b, _, task = board
    change = update(a, task["id"], status="done")
    undo(a, change["seq"])
    update(b, task["id"], status="in_progress")
    before = state(world, wid, task["id"])
    out = undo(a, change["seq"], redo=True)
    assert out["error"]["code"] == "conflict" and out["error"]["task"]["status"] == "in_progress"
    assert state(world, wid, task["id"]) == before


def test_a_deletion_undone_restores_the_task_and_a_creation_undone_deletes_it(board, world):
    _wid, a, b, _, task = board
    gone = a.send({"action": "task.delete", "request_id": rid(), "task_id": task["id"]})["data"]
    world.sink.reset()
    back = undo(a, gone["seq"])
    assert back["ok"] is True and back["task"]["deleted"] is False
    (ev,) = b.received("task.created")  # it exists again
    assert ev["data"]["task"]["version"] == back["task"]["version"]
    assert Api(world.rt.settings).ok("GET", f"/tasks/{task['id']}", "bob")["title"] == "Write the notes"
    created = a.create("Short-lived")["data"]
    out = undo(a, created["seq"])
    assert out["task"]["deleted"] is True
    assert undo(a, created["seq"], redo=True)["task"]["deleted"] is False


def test_undo_of_a_creation_is_refused_once_the_task_changed(board, world):
    _wid, a, b, _, _ = board
    created = a.create("New")["data"]
    update(b, created["task"]["id"], status="done")
    out = undo(a, created["seq"])
    assert out["error"]["code"] == "conflict" and out["error"]["task"]["deleted"] is False


def test_undo_of_someone_elses_change_is_forbidden_and_changes_nothing(board, world):
    wid, a, b, _, task = board
    change = update(b, task["id"], status="done")
    before = state(world, wid, task["id"])
    out = undo(a, change["seq"])
    assert out["error"]["code"] == "forbidden"
    assert state(world, wid, task["id"]) == before


def test_undo_of_an_unknown_seq_or_another_workspaces_change_is_not_found(board, world):
    wid, a, _, _, task = board
    other = world.workspace("ann", name="Other")
    o = world.connect("ann", other)
    mine_elsewhere = None
    for i in range(5):  # seqs 1..5 in the other workspace, beyond this one's
        mine_elsewhere = o.create(f"elsewhere {i}")["data"]["seq"]
    before = state(world, wid, task["id"])
    assert mine_elsewhere > before[1]
    for seq in (before[1] + 1, mine_elsewhere, 10**9):
        out = undo(a, seq)
        assert out["error"]["code"] == "not_found", seq
    assert state(world, wid, task["id"]) == before


def test_an_undo_cannot_itself_be_undone_and_bad_frames_are_refused(board, world):
    wid, a, _, _, task = board
    change = update(a, task["id"], status="done")
    u = undo(a, change["seq"])
    before = state(world, wid, task["id"])
    out = undo(a, u["seq"])
    assert out["error"]["code"] == "validation_error" and out["error"]["field"] == "seq"
    for action in ("task.undo", "task.redo"):
        for bad in ({"seq": 0}, {"seq": -1}, {"seq": "x"}, {"seq": 1.5}, {}, {"seq": None}):
            reply = a.send({"action": action, "request_id": rid(), **bad})
            error = reply["data"]["error"]
            assert (error["code"], error["field"]) == ("validation_error", "seq"), (action, bad)
        missing_id = a.send({"action": action, "seq": change["seq"]})["data"]["error"]
        assert (missing_id["code"], missing_id["field"]) == ("validation_error", "request_id")
    assert state(world, wid, task["id"]) == before


def test_undo_restores_an_assignee_and_a_due_date_and_checks_the_assignee_is_still_a_member(board, world):
    wid, a, _, _, task = board
    update(a, task["id"], assigned_to="bob", due_date="2027-01-15")
    second = update(a, task["id"], assigned_to="carol", due_date="2027-02-01")
    undone = undo(a, second["seq"])  # back to bob and the 15th
    assert (undone["task"]["assigned_to"], undone["task"]["due_date"]) == ("bob", "2027-01-15")
    assert undone["ok"] is True and undone["seq"] == second["seq"] + 1
    redone = undo(a, second["seq"], redo=True)
    assert (redone["task"]["assigned_to"], redone["task"]["due_date"]) == ("carol", "2027-02-01")
    # bob leaves: undoing the change that replaced him again cannot make him the assignee
    world.remove_member(wid, "bob")
    before = state(world, wid, task["id"])
    refused = undo(a, second["seq"])["error"]
    assert (refused["code"], refused["field"]) == ("conflict", "assigned_to")
    assert state(world, wid, task["id"]) == before


def test_undo_refusals_say_why(board, world):
    _wid, a, b, _, task = board
    change = update(a, task["id"], status="done")
    assert undo(a, change["seq"], redo=True)["error"]["message"] == "this change is not undone"
    assert undo(a, change["seq"])["ok"] is True
    assert undo(a, change["seq"])["error"]["message"] == "this change is already undone"
    mine = update(a, task["id"], title="Ann's")
    update(b, task["id"], title="Bob's")
    assert undo(a, mine["seq"])["error"]["message"] == "the task changed since; nothing was undone or redone"
    assert undo(b, mine["seq"])["error"]["message"] == "only your own changes can be undone or redone"
    unknown = undo(a, 10**9)["error"]
    assert (unknown["message"], unknown["field"]) == ("no change with this seq in this workspace", "seq")
    not_a_change = undo(a, undo(a, change["seq"], redo=True)["seq"])["error"]
    assert not_a_change["message"] == "seq: not a task change that can be undone or redone"


def test_undo_refusals_carry_the_task_as_it_is(board, world):
    wid, a, b, _, task = board
    change = update(a, task["id"], status="done")

    def refused_with_the_task(refusal: dict) -> None:
        current = state(world, wid, task["id"])[0]
        assert refusal["error"]["code"] == "conflict"
        assert (refusal["error"]["task"]["id"], refusal["error"]["task"]["version"]) == (task["id"], current)

    refused_with_the_task(undo(a, change["seq"], redo=True))  # not undone
    assert undo(a, change["seq"])["ok"] is True
    refused_with_the_task(undo(a, change["seq"]))  # already undone
    created = a.create("Mine")["data"]
    update(b, created["task"]["id"], title="Bob's now")
    before = state(world, wid, created["task"]["id"])
    out = undo(a, created["seq"])["error"]
    assert out["message"] == "the task changed since; nothing was undone or redone"
    assert out["task"]["title"] == "Bob's now" and out["task"]["deleted"] is False
    assert state(world, wid, created["task"]["id"]) == before


def test_a_create_undone_and_redone_is_a_deletion_then_a_creation_and_tells_the_assignee(board, world):
    wid, a, _b, _, _task = board
    created = a.create("Assigned", assigned_to="bob")["data"]
    tid = created["task"]["id"]

    def bobs_notes() -> list[tuple[str, str | None]]:
        return world.rt.db.run(
            lambda cur: [
                (r["type"], r["task_id"] and str(r["task_id"]))
                for r in cur.execute(
                    "SELECT type, task_id FROM notifications WHERE user_id = 'bob' ORDER BY created_at, id"
                )
            ]
        )

    assert bobs_notes() == [("task.assigned", tid)]
    undone = undo(a, created["seq"])
    redone = undo(a, created["seq"], redo=True)
    types = world.rt.db.run(
        lambda cur: [
            r["type"]
            for r in cur.execute(
                "SELECT type FROM activity WHERE workspace_id = %s AND seq = ANY(%s) ORDER BY seq",
                (wid, [undone["seq"], redone["seq"]]),
            )
        ]
    )
    assert types == ["task.deleted", "task.created"]
    assert bobs_notes()[:2] == [("task.assigned", tid), ("task.deleted", tid)]


def test_undo_is_idempotent_by_request_id(board, world):
    wid, a, _, _, task = board
    change = update(a, task["id"], status="done")
    key = rid()
    first = undo(a, change["seq"], request_id=key)
    second = undo(a, change["seq"], request_id=key)
    assert first == second and first["ok"] is True
    assert state(world, wid, task["id"])[1] == first["seq"]


def test_a_removed_member_cannot_undo(board, world):
    wid, _a, b, _, task = board
    change = update(b, task["id"], status="done")
    world.remove_member(wid, "bob")
    before = state(world, wid, task["id"])
    refusal = undo(b, change["seq"])["error"]
    assert (refusal["code"], refusal["message"]) == ("forbidden", "not a member of this workspace")
    assert state(world, wid, task["id"]) == before


def _racing_a_removal(world: Any, wid: str, uid: str, request: Any) -> dict[str, Any]:
    """Run ``request()`` while a removal of ``uid`` is under way (member row deleted, workspace row
    locked, not committed yet); commit the removal once the request waits on a lock. Its reply."""
    import psycopg

    removal = psycopg.connect(world.rt.settings.dsn)
    try:
        removal.execute("SELECT 1 FROM workspaces WHERE id = %s FOR UPDATE", (wid,))
        removal.execute("DELETE FROM workspace_members WHERE workspace_id = %s AND user_id = %s", (wid, uid))
        reply = InThread(request)
        wait_until_a_transaction_waits_for_a_lock(world.rt)
        removal.commit()
        return dict(reply.result())
    finally:
        removal.close()


def test_an_undo_racing_a_removal_waits_for_it_and_is_refused(board, world):
    """The member's undo locks their member row: it waits for the removal and then finds no
    membership. Without that lock it would read the row as it was, wait only for the workspace's
    seq, and commit a change after ``member.removed``."""
    wid, _a, b, _, task = board
    change = update(b, task["id"], title="Bob's")
    reply = _racing_a_removal(world, wid, "bob", lambda: undo(b, change["seq"]))
    assert reply["error"]["code"] == "forbidden"
    assert state(world, wid, task["id"])[2]["title"] == "Bob's"


def test_a_description_merge_racing_a_removal_waits_for_it_and_is_refused(board, world):
    """A description written from an older version is merged step by step (the task read, then
    written): that path locks the member row too, so it waits for the removal and finds none."""
    wid, _a, b, _, task = board
    reply = _racing_a_removal(world, wid, "bob", lambda: update(b, task["id"], seen=1, description="Bob's."))
    assert (reply["error"]["code"], reply["error"]["message"]) == (
        "forbidden",
        "not a member of this workspace",
    )
    assert state(world, wid, task["id"])[2]["description"] == task["description"]


def test_a_create_racing_a_removal_waits_for_it_and_is_refused(board, world):
    wid, _a, b, _, _task = board
    reply = _racing_a_removal(world, wid, "bob", lambda: b.create("after removal")["data"])
    assert reply["error"]["code"] == "forbidden"
    titles = world.rt.db.run(
        lambda cur: [
            r["title"] for r in cur.execute("SELECT title FROM tasks WHERE workspace_id = %s", (wid,))
        ]
    )
    assert "after removal" not in titles


def test_a_workspace_that_does_not_exist_is_not_found_by_name(world):
    from collab.domain.access import require_member
    from collab.errors import NotFound

    world.user("ann")
    with pytest.raises(NotFound) as missing:
        world.rt.db.run(lambda cur: require_member(cur, str(uuid.uuid4()), "ann"))
    assert missing.value.message == "workspace not found"


# -- history --------------------------------------------------------------------------------------
def test_history_lists_field_diffs_newest_first_for_members_only(board, world):
    _wid, a, b, _, task = board
    api = Api(world.rt.settings)
    update(b, task["id"], status="in_progress", due_date="2027-01-31")
    change = update(a, task["id"], title="Final")
    undo(a, change["seq"])
    page = api.ok("GET", f"/tasks/{task['id']}/history", "carol")
    assert [(e["kind"], e["type"]) for e in page["items"]] == [
        ("undo", "task.updated"),
        ("update", "task.updated"),
        ("update", "task.updated"),
        ("create", "task.created"),
    ]
    newest, renamed, bobs, created = page["items"]
    assert newest["target_seq"] == change["seq"] and newest["changes"] == {
        "title": {"from": "Final", "to": "Write the notes"}
    }
    assert renamed["actor"] == {"id": "ann", "display_name": "Ann"}
    assert bobs["changes"] == {
        "status": {"from": "todo", "to": "in_progress"},
        "due_date": {"from": None, "to": "2027-01-31"},
    }
    assert created["changes"]["title"] == {"from": None, "to": "Write the notes"}
    assert [e["seq"] for e in page["items"]] == sorted((e["seq"] for e in page["items"]), reverse=True)
    # paged: one at a time, by cursor
    seen, cursor = [], None
    for _ in range(20):  # bounded: a cursor that never ends fails, not hangs
        q = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        p = api.call("GET", f"/tasks/{task['id']}/history", "ann", query=q).body
        seen += [e["seq"] for e in p["items"]]
        cursor = p["next_cursor"]
        if cursor is None:
            break
    else:
        pytest.fail("the pages never end")
    assert seen == [e["seq"] for e in page["items"]]
    world.user("dave")
    assert api.call("GET", f"/tasks/{task['id']}/history", "dave").status == 403
    assert api.call("GET", f"/tasks/{uuid.uuid4()}/history", "ann").status == 404
    for limit in (0, 201, "x"):
        assert api.call("GET", f"/tasks/{task['id']}/history", "ann", query={"limit": limit}).status == 422
    assert api.call("GET", f"/tasks/{task['id']}/history", "ann", query={"cursor": "bm9wZQ"}).body == {
        "items": [],
        "next_cursor": None,
    }


def test_history_names_an_actor_without_a_display_name_by_their_id(board, world):
    _wid, a, _b, _, task = board
    update(a, task["id"], title="Renamed")
    world.rt.db.run(lambda cur: cur.execute("UPDATE users SET display_name = '' WHERE id = 'ann'"))
    newest = Api(world.rt.settings).ok("GET", f"/tasks/{task['id']}/history", "bob")["items"][0]
    assert newest["actor"] == {"id": "ann", "display_name": "ann"}


# -- editing indicators ---------------------------------------------------------------------------
def test_editing_reaches_peers_expires_after_15_seconds_and_is_cleared_on_blur(board, world, clock):
    _wid, a, b, c, task = board
    b.editing(task["id"], "description")
    (ev,) = a.received("presence.editing")
    assert ev["data"]["user"] == {"id": "bob", "display_name": "Bob"}
    assert ev["data"]["editing"]["task_id"] == task["id"] and ev["data"]["editing"]["field"] == "description"
    assert b.received("presence.editing") == []  # not to the sender
    entry = {e["user"]["id"]: e for e in c.send({"action": "sync", "since": None})["data"]["presence"]}["bob"]
    assert entry["editing"] == ev["data"]["editing"]
    clock.advance(14.9)
    assert (
        "editing"
        in {e["user"]["id"]: e for e in c.send({"action": "sync", "since": None})["data"]["presence"]}["bob"]
    )
    clock.advance(0.2)
    assert (
        "editing"
        not in {e["user"]["id"]: e for e in c.send({"action": "sync", "since": None})["data"]["presence"]}[
            "bob"
        ]
    )
    b.editing(task["id"])  # again, then blur
    world.sink.reset()
    b.editing(None)
    (off,) = a.received("presence.editing")
    assert off["data"]["editing"] is None
    # never in Postgres: no table holds it
    dump = world.rt.db.run(
        lambda cur: json.dumps(
            [list(r.values()) for r in cur.execute("SELECT * FROM activity").fetchall()], default=str
        )
    )
    assert "editing" not in dump


def test_editing_ends_when_the_connection_that_set_it_closes(board, world):
    wid, a, b, _, task = board
    b2 = world.connect("bob", wid)  # bob has a second tab
    b.editing(task["id"])
    world.sink.reset()
    b.disconnect()
    (off,) = a.received("presence.editing")
    assert off["data"]["user"]["id"] == "bob" and off["data"]["editing"] is None
    assert (
        "editing"
        not in {e["user"]["id"]: e for e in a.send({"action": "sync", "since": None})["data"]["presence"]}[
            "bob"
        ]
    )
    assert b2.cid


def test_editing_has_its_own_budget_and_does_not_eat_the_frame_budget(board, world):
    _wid, _a, b, _, task = board
    limit = world.rt.settings.limits.editing_per_minute
    for _ in range(limit):
        b.editing(task["id"])
    refused = b.send(
        {
            "action": "presence.update",
            "status": "active",
            "editing": {"task_id": task["id"], "field": "title"},
        }
    )
    assert refused["type"] == "error" and refused["data"]["code"] == "rate_limited"
    assert refused["data"]["retry_after_ms"] > 0
    assert update(b, task["id"], status="done")["ok"] is True  # the frame budget is untouched


@pytest.mark.parametrize(
    "bad",
    [
        {"task_id": "nope", "field": "title"},
        {"task_id": str(uuid.uuid4()), "field": "version"},
        {"field": "title"},
        "title",
    ],
)
def test_a_bad_editing_target_is_refused(board, world, bad):
    _wid, a, b, _, _task = board
    reply = b.send({"action": "presence.update", "status": "active", "editing": bad})
    assert reply["type"] == "error" and reply["data"]["code"] == "validation_error"
    assert reply["data"]["field"].startswith("editing")
    assert a.received("presence.editing") == []


# -- descriptions that merge ----------------------------------------------------------------------
def test_two_concurrent_description_edits_both_keep_their_text(board, world):
    _wid, a, b, _, task = board
    base = task["description"]  # "Intro.\n\nBody.\n\nEnd."
    update(b, task["id"], seen=1, description=base.replace("Intro.", "Intro, by Bob."))
    world.sink.reset()
    ack = update(a, task["id"], seen=1, description=base.replace("End.", "The end, by Ann."))
    assert ack["task"]["description"] == "Intro, by Bob.\n\nBody.\n\nThe end, by Ann."
    assert ack["merged"] == ["description"] and ack["overwrote"] == []
    assert b.received("task.overwritten") == []
    (ev,) = b.received("task.updated")
    assert ev["data"]["task"]["description"] == ack["task"]["description"]


def test_overlapping_description_edits_fall_back_to_last_write_and_are_reported(board, world):
    _wid, a, b, _, task = board
    base = task["description"]
    update(b, task["id"], seen=1, description=base.replace("Body.", "Bob's body."))
    world.sink.reset()
    ack = update(
        a, task["id"], seen=1, description=base.replace("Body.", "Ann's body.").replace("End.", "Fin.")
    )
    assert ack["task"]["description"] == "Intro.\n\nAnn's body.\n\nFin."
    (item,) = ack["overwrote"]
    assert item["field"] == "description" and item["hunks"] == 1
    assert item["value"] == "Intro.\n\nBob's body.\n\nEnd."
    (note,) = b.received("task.overwritten")
    assert note["data"]["fields"][0]["hunks"] == 1


def test_a_merge_that_would_pass_the_length_limit_is_last_write_wins(board, world):
    _wid, a, b, _, task = board
    update(b, task["id"], seen=1, description="b" * 6000 + task["description"])
    mine = task["description"] + "a" * 6000
    ack = update(a, task["id"], seen=1, description=mine)
    assert ack["task"]["description"] == mine and "merged" not in ack
    assert ack["overwrote"][0]["field"] == "description" and "hunks" not in ack["overwrote"][0]


def test_a_merge_of_exactly_the_length_limit_is_kept(board, world):
    _wid, a, b, _, task = board
    base = task["description"]
    update(b, task["id"], seen=1, description="b" * 5000 + base)
    mine = base + "a" * (10_000 - 5000 - len(base))
    ack = update(a, task["id"], seen=1, description=mine)
    assert ack["task"]["description"] == "b" * 5000 + mine and len(ack["task"]["description"]) == 10_000
    assert ack["merged"] == ["description"] and ack["overwrote"] == []


def test_a_description_written_from_the_version_that_last_changed_it_is_not_merged(board, world):
    """Nothing concurrent to merge: bob changed the description at version 2 and ann saw version 2."""
    _wid, a, b, _, task = board
    update(b, task["id"], description="Bob's text.")
    ack = update(a, task["id"], seen=2, description="Ann's text.")
    assert ack["task"]["description"] == "Ann's text."
    assert "merged" not in ack and ack["overwrote"] == []


# -- frame sizes ----------------------------------------------------------------------------------
def test_the_largest_receipt_and_overwritten_notice_fit_one_websocket_message(world):
    """The largest task the contract allows (200 four-byte characters of title, 10,000 of
    description), every field overwritten: the ack (task + the replaced values) and the notice
    stay within API Gateway's 128 KB."""
    from collab.domain import tasks
    from collab.protocol.client_frames import TaskDraft
    from collab.protocol.wire import MESSAGE_LIMIT, frame, size
    from collab.ws.message import _ok

    wid = world.workspace("ann", "bob")
    big = TaskDraft(title="😀" * 200, description="😀" * 10_000)
    task = tasks.create(world.rt.db, "ann", big, workspace_id=wid).task
    theirs = {"title": "🙂" * 200, "description": "🙂" * 10_000, "status": "done", "priority": "urgent",
              "due_date": "2027-12-31", "assigned_to": "bob"}  # fmt: skip
    tasks.update(world.rt.db, "bob", task["id"], theirs, scope=wid)
    mine = {"title": "😎" * 200, "description": "😎" * 10_000, "status": "in_progress", "priority": "low",
            "due_date": None, "assigned_to": "ann"}  # fmt: skip
    m = tasks.update(world.rt.db, "ann", task["id"], mine, seen_version=1, scope=wid)
    assert {o["field"] for o in m.overwrote} == set(mine)
    ack = frame("ack", wid, "ann", m.task["updated_at"], _ok(str(uuid.uuid4()), m))
    (notice,) = [body for _, body in m.committed.notices]
    assert size(ack) > 80_000  # really the largest: two descriptions of 40 KB
    assert size(ack) <= MESSAGE_LIMIT and size(notice) <= MESSAGE_LIMIT


def test_a_deleted_tasks_history_is_gone_with_it_and_back_when_the_deletion_is_undone(board, world):
    _, a, _, _, task = board
    api = Api(world.rt.settings)
    gone = a.send({"action": "task.delete", "request_id": rid(), "task_id": task["id"]})["data"]
    assert api.call("GET", f"/tasks/{task['id']}/history", "bob").status == 404
    back = undo(a, gone["seq"])
    items = api.ok("GET", f"/tasks/{task['id']}/history", "bob")["items"]
    assert [(e["seq"], e["type"], e["changes"]) for e in items[:2]] == [
        (back["seq"], "task.created", {"deleted": {"from": True, "to": False}}),
        (gone["seq"], "task.deleted", {"deleted": {"from": False, "to": True}}),
    ]


def test_patch_with_seen_version_merges_and_tells_the_overwritten_user(board, world):
    _, _, b, _, task = board
    base = task["description"]
    update(b, task["id"], seen=1, description=base.replace("Intro.", "Intro, by Bob."), status="done")
    world.sink.reset()
    api = Api(world.rt.settings)
    answer = api.call(
        "PATCH",
        f"/tasks/{task['id']}",
        "ann",
        {"description": base.replace("End.", "The end, by Ann."), "status": "in_progress"},
        query={"seen_version": 1},
    )
    assert answer.status == 200
    assert answer.body["description"] == "Intro, by Bob.\n\nBody.\n\nThe end, by Ann."
    (note,) = b.received("task.overwritten")
    assert [(f["field"], f["value"]) for f in note["data"]["fields"]] == [("status", "done")]
    bad = api.call("PATCH", f"/tasks/{task['id']}", "ann", {"status": "done"}, query={"seen_version": 0})
    assert bad.status == 422


def test_a_task_of_another_workspace_cannot_be_deleted_over_this_ones_connection(board, world):
    """A connection acts in its own workspace only, even for a member of both."""
    _wid, a, _, _, _task = board
    other = world.workspace("ann", name="Other")
    theirs = world.connect("ann", other).create("elsewhere")["data"]["task"]
    before = state(world, other, theirs["id"])
    reply = a.send({"action": "task.delete", "request_id": rid(), "task_id": theirs["id"]})
    assert (reply["data"]["error"]["code"], reply["data"]["error"]["message"]) == (
        "not_found",
        "task not found",
    )
    assert state(world, other, theirs["id"]) == before
