"""A user's notifications as the domain pages and marks them (collab.domain.notifications): a page's limit
is checked by the domain itself, whoever calls it, and a page holds at most that many, newest first;
marking read takes 1 to 100 ids and touches only the user's own."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from test_notifications_claim import _notify

from collab.domain import notifications
from collab.errors import ValidationError


@pytest.mark.parametrize("limit", [0, 201])
def test_a_limit_outside_1_to_200_is_refused(world: Any, limit: int) -> None:
    with pytest.raises(ValidationError) as refused:
        notifications.list_for(world.rt.db, "ann", limit=limit)
    assert refused.value.to_wire() == {
        "code": "validation_error",
        "message": "limit: must be between 1 and 200",
        "field": "limit",
    }


def test_a_page_holds_the_limit_newest_first(world: Any) -> None:
    _notify(world, "ann", 202)
    page = notifications.list_for(world.rt.db, "ann", limit=200)
    assert len(page["items"]) == 200 and page["next_cursor"] == page["items"][-1]["id"]
    rest = notifications.list_for(world.rt.db, "ann", cursor=page["next_cursor"], limit=200)
    assert len(rest["items"]) == 2 and rest["next_cursor"] is None
    one = notifications.list_for(world.rt.db, "ann", limit=1)
    assert [n["id"] for n in one["items"]] == [page["items"][0]["id"]]
    exact = notifications.list_for(world.rt.db, "ann", cursor=page["next_cursor"], limit=2)
    assert len(exact["items"]) == 2 and exact["next_cursor"] is None  # a full last page has no next


@pytest.mark.parametrize("cursor", ["not-a-uuid", "\x00"])
def test_a_cursor_postgres_cannot_read_is_refused(world: Any, cursor: str) -> None:
    world.user("ann")
    with pytest.raises(ValidationError) as refused:
        notifications.list_for(world.rt.db, "ann", cursor=cursor, limit=10)
    assert refused.value.to_wire() == {
        "code": "validation_error",
        "message": "cursor: invalid",
        "field": "cursor",
    }


def _ids(world: Any, uid: str) -> list[str]:
    rows = world.rt.db.run(
        lambda cur: cur.execute(
            "SELECT id FROM notifications WHERE user_id = %s ORDER BY id", (uid,)
        ).fetchall()
    )
    return [str(r["id"]) for r in rows]


def _state(world: Any, uid: str) -> list[tuple[Any, Any]]:
    rows = world.rt.db.run(
        lambda cur: cur.execute(
            "SELECT read_at, delivered_at FROM notifications WHERE user_id = %s ORDER BY id", (uid,)
        ).fetchall()
    )
    return [(r["read_at"], r["delivered_at"]) for r in rows]


@pytest.mark.parametrize("count", [0, 101])
def test_marking_read_takes_1_to_100_ids(world: Any, count: int) -> None:
    with pytest.raises(ValidationError) as refused:
        notifications.mark_read(world.rt.db, "ann", [str(uuid.uuid4()) for _ in range(count)])
    assert refused.value.to_wire() == {
        "code": "validation_error",
        "message": "ids: between 1 and 100 notification ids",
        "field": "ids",
    }


def test_marking_read_touches_only_the_users_own_and_keeps_the_first_reading(world: Any) -> None:
    _notify(world, "ann", 3)
    _notify(world, "bob", 1)
    mine, [bobs] = _ids(world, "ann"), _ids(world, "bob")
    assert notifications.mark_read(world.rt.db, "ann", [mine[2], mine[0], bobs]) == [mine[0], mine[2]]
    first = _state(world, "ann")
    assert first[0][0] is not None and first[0][1] is not None  # read, and so delivered
    assert first[1] == (None, None) and _state(world, "bob") == [(None, None)]
    many = [mine[1]] + [str(uuid.uuid4()) for _ in range(99)]
    assert notifications.mark_read(world.rt.db, "ann", [mine[0], *many[:99]]) == [mine[0], mine[1]]
    assert _state(world, "ann")[0] == first[0]  # read again: the first reading stays
