"""The update path: one statement locks, checks and patches the task; when a rule refuses, the
step-by-step path names the rule. Both must give the same answers."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from collab.domain import tasks
from collab.errors import Conflict, Forbidden, NotFound
from collab.protocol.client_frames import TaskDraft


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The SQL statements sent, in order (BEGIN and COMMIT are not statements here)."""
    sent: list[str] = []
    real = psycopg.Cursor.execute

    def execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(str(query).split(None, 1)[0].upper())
        return real(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", execute)
    return sent


def test_a_plain_patch_is_two_statements_the_update_and_its_event(rt, wid, statements):
    task = tasks.create(rt.db, "alice", TaskDraft(title="A", assigned_to="bob"), workspace_id=wid).task
    statements.clear()
    m = tasks.update(rt.db, "alice", task["id"], {"title": "B", "status": "done"}, scope=wid)
    assert statements == ["UPDATE", "WITH", "INSERT"], "patch, seq + activity, the assignee's notification"
    assert (m.task["title"], m.task["status"], m.task["version"]) == ("B", "done", 2)
    # the notification knows what changed: the before values came back from the same statement
    [note] = m.committed.notifications
    assert (note["user_id"], note["notification"]["type"]) == ("bob", "task.changed")
    assert (note["notification"]["task_id"], note["notification"]["workspace_id"]) == (task["id"], wid)
    assert note["notification"]["payload"] == {"title": "B", "seq": m.seq, "fields": ["status", "title"]}


def test_reassignment_in_one_statement_notifies_both_assignees(rt, wid, api, statements):
    api.add("alice", wid, "carol")
    task = tasks.create(rt.db, "alice", TaskDraft(title="A", assigned_to="bob"), workspace_id=wid).task
    statements.clear()
    m = tasks.update(rt.db, "alice", task["id"], {"assigned_to": "carol"}, base_version=1, scope=wid)
    assert statements[0] == "UPDATE" and statements.count("UPDATE") == 1
    assert m.task["assigned_to"] == "carol"
    kinds = sorted((n["user_id"], n["notification"]["type"]) for n in m.committed.notifications)
    assert kinds == [("bob", "task.unassigned"), ("carol", "task.assigned")]
    # each says which task (its id, its title now) and which event
    assert [n["notification"]["payload"] for n in m.committed.notifications] == [
        {"title": "A", "seq": m.seq}
    ] * 2
    assert [n["notification"]["task_id"] for n in m.committed.notifications] == [task["id"]] * 2


@pytest.mark.parametrize(
    ("who", "changes", "options", "error"),
    [
        ("dave", {"title": "x"}, {}, Forbidden),  # not a member of the task's workspace
        ("alice", {"title": "x"}, {"scope": "00000000-0000-0000-0000-000000000000"}, NotFound),
        ("alice", {"title": "x"}, {"base_version": 7}, Conflict),
        ("alice", {"assigned_to": "dave"}, {}, Conflict),  # not a member
    ],
)
def test_refusals_name_their_rule_and_change_nothing(rt, wid, statements, who, changes, options, error):
    task = tasks.create(rt.db, "alice", TaskDraft(title="A"), workspace_id=wid).task
    with pytest.raises(error):
        tasks.update(rt.db, who, task["id"], changes, **options)
    assert tasks.get(rt.db, "alice", task["id"]) == task


def test_deleted_and_unknown_tasks_are_not_found(rt, wid):
    task = tasks.create(rt.db, "alice", TaskDraft(title="A"), workspace_id=wid).task
    tasks.delete(rt.db, "alice", task["id"])
    with pytest.raises(NotFound):
        tasks.update(rt.db, "alice", task["id"], {"title": "x"})
    with pytest.raises(NotFound):
        tasks.update(rt.db, "alice", "00000000-0000-0000-0000-000000000000", {"title": "x"})


def test_personal_tasks_are_their_owners_and_assignable_to_them_only(rt, api):
    for user in ("alice", "bob"):  # a user exists from their first request on
        api.ok("GET", "/workspaces", user)
    task = tasks.create(rt.db, "alice", TaskDraft(title="mine"), workspace_id=None).task
    m = tasks.update(rt.db, "alice", task["id"], {"assigned_to": "alice"})
    assert (m.task["assigned_to"], m.seq) == ("alice", None)
    with pytest.raises(Conflict):
        tasks.update(rt.db, "alice", task["id"], {"assigned_to": "bob"})
    with pytest.raises(NotFound):
        tasks.update(rt.db, "bob", task["id"], {"title": "theirs"})
    assert tasks.get(rt.db, "alice", task["id"])["version"] == 2


def test_a_deletion_tells_the_assignee_which_task_unless_they_have_left(rt, wid):
    task = tasks.create(rt.db, "alice", TaskDraft(title="Plan", assigned_to="bob"), workspace_id=wid).task
    m = tasks.delete(rt.db, "alice", task["id"])
    [note] = m.committed.notifications
    assert (note["user_id"], note["notification"]["type"]) == ("bob", "task.deleted")
    assert note["notification"]["payload"] == {"title": "Plan", "seq": m.seq}
    # removed from the workspace (their tasks stay assigned): they hear nothing more of it
    kept = tasks.create(rt.db, "alice", TaskDraft(title="Keep", assigned_to="bob"), workspace_id=wid).task
    rt.db.run(
        lambda cur: cur.execute(
            "DELETE FROM workspace_members WHERE workspace_id = %s AND user_id = 'bob'", (wid,)
        )
    )
    assert tasks.delete(rt.db, "alice", kept["id"]).committed.notifications == []
    left = rt.db.run(
        lambda cur: cur.execute(
            "SELECT count(*) AS n FROM notifications WHERE task_id = %s", (kept["id"],)
        ).fetchone()
    )
    assert left["n"] == 1  # the assignment only


def test_an_assignee_who_has_left_hears_of_no_change_or_unassignment(rt, wid, api):
    api.add("alice", wid, "carol")
    changed = tasks.create(rt.db, "alice", TaskDraft(title="A", assigned_to="bob"), workspace_id=wid).task
    moved = tasks.create(rt.db, "alice", TaskDraft(title="B", assigned_to="bob"), workspace_id=wid).task
    rt.db.run(
        lambda cur: cur.execute(
            "DELETE FROM workspace_members WHERE workspace_id = %s AND user_id = 'bob'", (wid,)
        )
    )
    assert tasks.update(rt.db, "alice", changed["id"], {"title": "A2"}).committed.notifications == []
    m = tasks.update(rt.db, "alice", moved["id"], {"assigned_to": "carol"})
    assert [(n["user_id"], n["notification"]["type"]) for n in m.committed.notifications] == [
        ("carol", "task.assigned")
    ]


def test_only_task_changes_store_what_changed(rt, wid, api):
    """An activity row's ``changes`` is SQL NULL for events that are not task changes (0005)."""
    api.add("alice", wid, "carol")
    tasks.create(rt.db, "alice", TaskDraft(title="A"), workspace_id=wid)
    rows = rt.db.run(
        lambda cur: cur.execute(
            "SELECT type, changes IS NULL AS absent FROM activity WHERE workspace_id = %s ORDER BY seq",
            (wid,),
        ).fetchall()
    )
    assert [(r["type"], r["absent"]) for r in rows] == [
        ("member.added", True),
        ("member.added", True),
        ("task.created", False),
    ]
