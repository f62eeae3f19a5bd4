"""Tasks over HTTP: the same domain service as the WebSocket, so the same events, seqs, activity
and notifications; personal tasks seen by their owner only; stable cursor pagination."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest


def _history(rt: Any, wid: str) -> list[dict[str, Any]]:
    return [json.loads(raw) for _, raw in rt.store.history(wid, 0)]


def test_a_mutation_over_http_is_a_workspace_event_with_activity_history_and_notifications(api, rt, wid):
    created = api.call("POST", f"/workspaces/{wid}/tasks", "alice", {"title": "Ship", "assigned_to": "bob"})
    assert created.status == 201
    task = created.body
    assert (task["workspace_id"], task["version"], task["created_by"], task["assigned_to"]) == (
        wid,
        1,
        "alice",
        "bob",
    )
    updated = api.ok("PATCH", f"/tasks/{task['id']}", "alice", {"status": "done"})
    assert (updated["status"], updated["title"], updated["version"]) == ("done", "Ship", 2)
    gone = api.ok("DELETE", f"/tasks/{task['id']}", "alice")
    assert (gone["deleted"], gone["version"]) == (True, 3)

    log = api.ok("GET", f"/workspaces/{wid}/activity", "bob")["items"]
    assert [(e["seq"], e["type"]) for e in log][:3] == [
        (4, "task.deleted"),
        (3, "task.updated"),
        (2, "task.created"),
    ]
    assert log[0]["data"]["task"] == gone and log[2]["data"]["task"] == task
    stored = _history(rt, wid)  # what sync replays: the same frames, in seq order
    assert [(e["seq"], e["type"], e["user_id"]) for e in stored] == [
        (1, "member.added", "alice"),
        (2, "task.created", "alice"),
        (3, "task.updated", "alice"),
        (4, "task.deleted", "alice"),
    ]
    assert stored[1]["data"] == {"task": task}
    notes = api.ok("GET", "/notifications", "bob")["items"]
    assert [n["type"] for n in notes] == ["task.deleted", "task.changed", "task.assigned", "member.added"]
    assert notes[0]["task_id"] == task["id"] and notes[1]["payload"]["fields"] == ["status"]
    assert api.ok("GET", "/notifications", "alice")["items"] == []


def test_http_and_websocket_share_the_service(api, rt, wid):
    """A task created over HTTP and one created by the service directly (as the WebSocket does)
    produce frames of the same shape and consecutive seqs."""
    from collab.domain import events, tasks
    from collab.protocol.client_frames import TaskDraft

    over_http = api.ok("POST", f"/workspaces/{wid}/tasks", "alice", {"title": "A"})
    direct = tasks.create(rt.db, "alice", TaskDraft(title="B"), workspace_id=wid)
    events.publish(rt, direct.committed, rt.gateway_for(None))
    first, second = _history(rt, wid)[-2:]
    assert (first["seq"] + 1, set(first)) == (second["seq"], set(second))
    assert first["data"]["task"] == over_http and second["data"]["task"] == direct.task


def test_patch_writes_only_the_fields_sent_and_checks_base_version(api, wid):
    task = api.ok(
        "POST", f"/workspaces/{wid}/tasks", "alice", {"title": "T", "description": "d", "priority": "low"}
    )
    after = api.ok("PATCH", f"/tasks/{task['id']}", "bob", {"priority": "urgent", "due_date": "2030-01-31"})
    assert (after["title"], after["description"], after["priority"], after["due_date"]) == (
        "T",
        "d",
        "urgent",
        "2030-01-31",
    )
    assert after["updated_by"] == "bob"
    stale = api.call("PATCH", f"/tasks/{task['id']}", "alice", {"title": "X"}, query={"base_version": 1})
    assert stale.status == 409 and stale.error["code"] == "conflict" and stale.error["task"]["version"] == 2
    fresh = api.call("PATCH", f"/tasks/{task['id']}", "alice", {"title": "X"}, query={"base_version": 2})
    assert fresh.status == 200 and fresh.body["version"] == 3
    for body in (
        {},
        {"title": None},
        {"title": ""},
        {"colour": "red"},
        {"status": "blocked"},
        {"description": "a\x00b"},
    ):
        answer = api.call("PATCH", f"/tasks/{task['id']}", "alice", body)
        assert answer.status == 422 and answer.error["code"] == "validation_error", body


def test_create_refusals(api, wid):
    tid = str(uuid.uuid4())
    assert api.call("POST", f"/workspaces/{wid}/tasks", "alice", {"id": tid, "title": "one"}).status == 201
    again = api.call("POST", f"/workspaces/{wid}/tasks", "alice", {"id": tid, "title": "one"})
    assert again.status == 409 and again.error == {
        "code": "conflict",
        "message": "a task with this id already exists",
    }
    outsider = api.call("POST", f"/workspaces/{wid}/tasks", "alice", {"title": "x", "assigned_to": "dave"})
    # schema-valid, refused by the workspace's state (v1.2: 409, no longer 422)
    assert outsider.status == 409 and outsider.error["code"] == "conflict"
    assert outsider.error["field"] == "assigned_to"
    for body in (
        {"title": "x" * 201},
        {"title": "ok", "description": "y" * 10_001},
        {"title": "ok", "extra": 1},
    ):
        assert api.call("POST", f"/workspaces/{wid}/tasks", "alice", body).status == 422


def test_deleted_tasks_are_gone_from_reads_and_writes(api, wid):
    task = api.ok("POST", f"/workspaces/{wid}/tasks", "alice", {"title": "T"})
    api.ok("DELETE", f"/tasks/{task['id']}", "bob")
    for method, body in (("GET", None), ("PATCH", {"title": "again"}), ("DELETE", None)):
        args = {} if body is None else {"body": body}
        assert api.call(method, f"/tasks/{task['id']}", "alice", **args).status == 404
    assert api.ok("GET", f"/workspaces/{wid}/tasks", "alice")["items"] == []


def test_personal_tasks_are_their_owners_only(api, rt):
    mine = api.call("POST", "/tasks", "alice", {"title": "Dentist", "assigned_to": "alice"})
    assert mine.status == 201 and mine.body["workspace_id"] is None
    tid = mine.body["id"]
    assert [t["id"] for t in api.ok("GET", "/tasks", "alice")["items"]] == [tid]
    assert api.ok("GET", "/tasks", "bob")["items"] == []
    for method, body in (("GET", None), ("PATCH", {"title": "mine now"}), ("DELETE", None)):
        args = {} if body is None else {"body": body}
        answer = api.call(method, f"/tasks/{tid}", "bob", **args)
        assert answer.status == 404 and answer.error["code"] == "not_found", method
    assert api.ok("PATCH", f"/tasks/{tid}", "alice", {"status": "done"})["version"] == 2
    assert api.call("POST", "/tasks", "alice", {"title": "x", "assigned_to": "bob"}).status == 409
    rows = rt.db.run(lambda cur: cur.execute("SELECT count(*) AS n FROM activity").fetchone())
    assert rows["n"] == 0  # personal tasks are no workspace's events


@pytest.mark.parametrize("where", ["workspace", "personal"])
def test_task_lists_page_in_a_stable_order(api, wid, where):
    base = f"/workspaces/{wid}/tasks" if where == "workspace" else "/tasks"
    made = [api.ok("POST", base, "alice", {"title": f"t{i}"})["id"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    for _ in range(20):  # bounded: a cursor that never ends fails, not hangs
        page = api.ok("GET", base, "alice", query={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert len(page["items"]) <= 2
        seen += [t["id"] for t in page["items"]]
        if cursor is None:
            api.ok("POST", base, "alice", {"title": "late"})  # an insert while paging lands at the end
        cursor = page["next_cursor"]
        if cursor is None:
            break
    else:
        pytest.fail("the pages never end")
    assert seen[:5] == made and len(seen) == 6
    bad = ({"limit": 0}, {"limit": 201}, {"limit": "many"}, {"cursor": "not a cursor"}, {"cursor": "x" * 129})
    for query in bad:
        answer = api.call("GET", base, "alice", query=query)
        assert answer.status == 422 and answer.error["code"] == "validation_error", query
    # A cursor of the documented alphabet and length that names no position is past the end.
    for cursor in ("not-a-cursor", "A", "x" * 128):
        assert api.ok("GET", base, "alice", query={"cursor": cursor}) == {"items": [], "next_cursor": None}


def test_the_domain_holds_a_pages_size_to_1_200_whoever_calls_it(api, rt, wid):
    """The route validates ``limit`` first; the service refuses out-of-range sizes itself too."""
    from collab.domain import tasks
    from collab.errors import ValidationError

    api.ok("POST", f"/workspaces/{wid}/tasks", "alice", {"title": "one"})
    api.ok("POST", "/tasks", "alice", {"title": "mine"})
    lists = (
        lambda limit: tasks.list_workspace(rt.db, "alice", wid, cursor=None, limit=limit),
        lambda limit: tasks.list_personal(rt.db, "alice", cursor=None, limit=limit),
    )
    for page in lists:
        assert len(page(1)["items"]) == 1 and len(page(200)["items"]) == 1
        for limit in (0, 201):
            with pytest.raises(ValidationError) as refused:
                page(limit)
            assert refused.value.to_wire() == {
                "code": "validation_error",
                "message": "limit: must be between 1 and 200",
                "field": "limit",
            }


def test_the_domain_refuses_a_patch_without_fields_whoever_calls_it(api, rt, wid):
    """The HTTP and WebSocket models ask for a field first; the service says so itself too."""
    from collab.domain import tasks
    from collab.errors import ValidationError

    tid = api.ok("POST", f"/workspaces/{wid}/tasks", "alice", {"title": "one"})["id"]
    with pytest.raises(ValidationError) as refused:
        tasks.update(rt.db, "alice", tid, {})
    assert refused.value.to_wire() == {
        "code": "validation_error",
        "message": "changes: at least one field is required",
        "field": "changes",
    }
    assert api.ok("GET", f"/tasks/{tid}", "alice")["version"] == 1


@pytest.mark.parametrize("same_instant", [False, True])
def test_a_page_continues_after_its_last_item_even_among_tasks_created_at_one_instant(
    api, rt, wid, same_instant
):
    """Tasks created in one instant are ordered by id: the cursor holds both, and the next page
    starts right after the last item shown. A page that holds exactly the rest has no next."""
    from collab.domain import tasks

    made = [api.ok("POST", f"/workspaces/{wid}/tasks", "alice", {"title": f"t{i}"})["id"] for i in range(5)]
    if same_instant:
        rt.db.run(lambda cur: cur.execute("UPDATE tasks SET created_at = '2026-12-04T12:00:00Z'"))
        made.sort()
    first = tasks.list_workspace(rt.db, "alice", wid, cursor=None, limit=3)
    assert [t["id"] for t in first["items"]] == made[:3] and first["next_cursor"]
    rest = tasks.list_workspace(rt.db, "alice", wid, cursor=first["next_cursor"], limit=3)
    assert [t["id"] for t in rest["items"]] == made[3:] and rest["next_cursor"] is None
    whole = tasks.list_workspace(rt.db, "alice", wid, cursor=None, limit=5)
    assert [t["id"] for t in whole["items"]] == made and whole["next_cursor"] is None


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_a_task_that_is_not_there_or_not_yours_says_which(api, wid, method):
    """Deleted, unknown, someone else's personal task: 404 "task not found"; a task of a
    workspace one is not a member of: 403, and why."""
    gone = api.ok("POST", f"/workspaces/{wid}/tasks", "alice", {"title": "soon gone"})["id"]
    api.ok("DELETE", f"/tasks/{gone}", "alice")
    personal = api.ok("POST", "/tasks", "alice", {"title": "mine"})["id"]
    theirs = api.ok("POST", f"/workspaces/{wid}/tasks", "alice", {"title": "members only"})["id"]
    body = {"body": {"status": "done"}} if method == "PATCH" else {}
    for tid, user in ((gone, "alice"), (str(uuid.uuid4()), "alice"), (personal, "bob")):
        answer = api.call(method, f"/tasks/{tid}", user, **body)
        assert (answer.status, answer.error["message"]) == (404, "task not found"), (tid, user)
    answer = api.call(method, f"/tasks/{theirs}", "carol", **body)
    assert (answer.status, answer.error["message"]) == (403, "not a member of this workspace")


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_an_assignee_who_may_not_hold_the_task_is_refused_with_why(api, wid, method):
    """A personal task only to its owner; a workspace task only to a member: 409 on the field."""
    personal = api.ok("POST", "/tasks", "alice", {"title": "mine"})["id"]
    shared = api.ok("POST", f"/workspaces/{wid}/tasks", "alice", {"title": "ours"})["id"]
    cases = (
        ("/tasks", personal, "bob", "assigned_to: a personal task can only be assigned to its owner"),
        (f"/workspaces/{wid}/tasks", shared, "carol", "assigned_to: not a member of this workspace"),
    )
    for create_path, tid, assignee, message in cases:
        body = {"title": "x", "assigned_to": assignee} if method == "POST" else {"assigned_to": assignee}
        path = create_path if method == "POST" else f"/tasks/{tid}"
        answer = api.call(method, path, "alice", body)
        assert answer.status == 409 and answer.error == {
            "code": "conflict",
            "message": message,
            "field": "assigned_to",
        }, path
