"""A task's history asked of the domain directly (collab.domain.history.history), on activity rows
written by the test: what an entry holds, the order and pages, and who gets a 404 or an empty page.
test_collaboration.py drives the same reads end to end, through real edits and the HTTP route."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from collab.domain import history
from collab.domain.history import encode_cursor
from collab.errors import Forbidden, NotFound, ValidationError


@pytest.fixture
def task(world: Any) -> tuple[str, str]:
    """A task of a board of ann's (bob a member) with four changes in its log (seqs 2, 3, 5, 6), and
    another task's change in between (seq 4)."""
    wid = world.workspace("ann", "bob")
    world.user("cy")

    def tx(cur: Any) -> str:
        tid = str(
            cur.execute(
                "INSERT INTO tasks (workspace_id, title, created_by, updated_by) VALUES (%s, 't', 'ann', 'ann')"
                " RETURNING id",
                (wid,),
            ).fetchone()["id"]
        )
        rows = [
            (2, "ann", "task.created", tid, "create", None, {"title": {"from": None, "to": "t"}}),
            (3, "bob", "task.updated", tid, "update", None, {"status": {"from": "todo", "to": "done"}}),
            (
                4,
                "ann",
                "task.updated",
                str(uuid.uuid4()),
                "update",
                None,
                {"title": {"from": "a", "to": "b"}},
            ),
            (5, "ann", "task.updated", tid, "undo", 3, {"status": {"from": "done", "to": "todo"}}),
            (6, "bob", "task.updated", tid, None, None, None),  # written before field diffs
        ]
        for seq, actor, type_, task_id, kind, target, changes in rows:
            cur.execute(
                "INSERT INTO activity (workspace_id, seq, actor_id, type, task_id, payload, kind, target_seq,"
                " changes, created_at) VALUES (%s, %s, %s, %s, %s, '{}', %s, %s, %s,"
                " '2026-12-05T10:00:00Z'::timestamptz + make_interval(secs => %s))",
                (
                    wid,
                    seq,
                    actor,
                    type_,
                    task_id,
                    kind,
                    target,
                    json.dumps(changes) if changes else None,
                    seq,
                ),
            )
        cur.execute("UPDATE users SET display_name = '' WHERE id = 'bob'")
        return tid

    return wid, world.rt.db.run(tx)


def test_entries_newest_first_with_who_when_what_and_the_fields(world: Any, task: tuple[str, str]) -> None:
    _, tid = task
    page = history.history(world.rt.db, "bob", tid, limit=50)
    assert page == {
        "items": [
            {"seq": 6, "actor": {"id": "bob", "display_name": "bob"}, "at": "2026-12-05T10:00:06.000Z",
             "type": "task.updated", "kind": None, "target_seq": None, "changes": {}},
            {"seq": 5, "actor": {"id": "ann", "display_name": "Ann"}, "at": "2026-12-05T10:00:05.000Z",
             "type": "task.updated", "kind": "undo", "target_seq": 3,
             "changes": {"status": {"from": "done", "to": "todo"}}},
            {"seq": 3, "actor": {"id": "bob", "display_name": "bob"}, "at": "2026-12-05T10:00:03.000Z",
             "type": "task.updated", "kind": "update", "target_seq": None,
             "changes": {"status": {"from": "todo", "to": "done"}}},
            {"seq": 2, "actor": {"id": "ann", "display_name": "Ann"}, "at": "2026-12-05T10:00:02.000Z",
             "type": "task.created", "kind": "create", "target_seq": None,
             "changes": {"title": {"from": None, "to": "t"}}},
        ],
        "next_cursor": None,
    }  # fmt: skip


def test_pages_follow_their_cursor_to_the_end(world: Any, task: tuple[str, str]) -> None:
    _, tid = task
    first = history.history(world.rt.db, "ann", tid, limit=3)
    assert [e["seq"] for e in first["items"]] == [6, 5, 3]
    assert first["next_cursor"] == encode_cursor(3)
    rest = history.history(world.rt.db, "ann", tid, cursor=first["next_cursor"], limit=3)
    assert [e["seq"] for e in rest["items"]] == [2] and rest["next_cursor"] is None
    exact = history.history(world.rt.db, "ann", tid, limit=4)
    assert len(exact["items"]) == 4 and exact["next_cursor"] is None  # no page past the last
    one = history.history(world.rt.db, "ann", tid, cursor=encode_cursor(6), limit=1)
    assert [e["seq"] for e in one["items"]] == [5] and one["next_cursor"] == encode_cursor(5)
    assert history.history(world.rt.db, "ann", tid, cursor="bm9wZQ", limit=3) == {
        "items": [],
        "next_cursor": None,
    }


@pytest.mark.parametrize("limit", [0, 201])
def test_a_limit_outside_1_to_200_is_refused(world: Any, task: tuple[str, str], limit: int) -> None:
    with pytest.raises(ValidationError) as refused:
        history.history(world.rt.db, "ann", task[1], limit=limit)
    assert refused.value.to_wire() == {
        "code": "validation_error",
        "message": "limit: must be between 1 and 200",
        "field": "limit",
    }
    assert len(history.history(world.rt.db, "ann", task[1], limit=200)["items"]) == 4


def test_who_gets_a_404_a_403_or_an_empty_page(world: Any, task: tuple[str, str]) -> None:
    _, tid = task
    with pytest.raises(Forbidden):
        history.history(world.rt.db, "cy", tid, limit=50)
    with pytest.raises(NotFound) as missing:
        history.history(world.rt.db, "ann", str(uuid.uuid4()), limit=50)
    assert missing.value.message == "task not found"
    world.rt.db.run(lambda cur: cur.execute("UPDATE tasks SET deleted = true WHERE id = %s", (tid,)))
    with pytest.raises(NotFound) as deleted:
        history.history(world.rt.db, "ann", tid, limit=50)
    assert deleted.value.message == "task not found"

    def personal(cur: Any) -> str:
        return str(
            cur.execute(
                "INSERT INTO tasks (workspace_id, title, created_by, updated_by) VALUES (NULL, 'p', 'ann', 'ann')"
                " RETURNING id"
            ).fetchone()["id"]
        )

    mine = world.rt.db.run(personal)
    assert history.history(world.rt.db, "ann", mine, limit=50) == {"items": [], "next_cursor": None}
    with pytest.raises(NotFound) as not_theirs:
        history.history(world.rt.db, "bob", mine, limit=50)
    assert not_theirs.value.message == "task not found"
