"""A page of a user's notifications (collab.domain.notifications.list_for): its limit is checked by
the domain itself, whoever calls it, and a page holds at most that many, newest first."""

from __future__ import annotations

from typing import Any

import pytest

from collab.domain import notifications
from collab.errors import ValidationError


def _notify(world: Any, uid: str, n: int) -> None:
    world.user(uid)
    world.rt.db.run(
        lambda cur: cur.executemany(
            "INSERT INTO notifications (user_id, type, payload, created_at)"
            " VALUES (%s, 'task.assigned', '{}', now() + make_interval(secs => %s))",
            [(uid, i) for i in range(n)],
        )
    )


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
