"""A sync's share of undelivered notifications (collab.domain.notifications.claim_undelivered):
the oldest that fit the reply's byte budget, at most 200, each byte counted (its text and its
comma), only those marked delivered, and "more" said exactly when some are left."""

from __future__ import annotations

from typing import Any

from collab.domain import notifications
from collab.domain.notifications import MAX_SYNC_NOTIFICATIONS, claim_undelivered
from collab.protocol.wire import size


def _notify(world: Any, uid: str, n: int) -> None:
    world.user(uid)
    world.rt.db.run(
        lambda cur: cur.executemany(
            "INSERT INTO notifications (user_id, type, payload, created_at)"
            " VALUES (%s, 'task.assigned', %s, now() + make_interval(secs => %s))",
            [(uid, f'{{"title": "{"t" * (i % 7)}"}}', i) for i in range(n)],
        )
    )


def _claim(world: Any, uid: str, budget: int | None = None) -> tuple[list[dict[str, Any]], bool]:
    return world.rt.db.run(lambda cur: claim_undelivered(cur, uid, budget))


class _Undo(Exception):
    def __init__(self, result: Any) -> None:
        super().__init__()
        self.result = result


def _claim_and_roll_back(world: Any, uid: str, budget: int) -> tuple[list[dict[str, Any]], bool]:
    """What a sync would claim, with nothing marked (its transaction rolled back)."""

    def tx(cur: Any) -> None:
        raise _Undo(claim_undelivered(cur, uid, budget))

    try:
        world.rt.db.run(tx)
    except _Undo as undone:
        return undone.result
    raise AssertionError("unreachable")


def _undelivered(world: Any, uid: str) -> int:
    return world.rt.db.run(
        lambda cur: cur.execute(
            "SELECT count(*) AS n FROM notifications WHERE user_id = %s AND delivered_at IS NULL", (uid,)
        ).fetchone()["n"]
    )


def test_a_budget_is_filled_to_the_byte_and_not_one_past_it(world: Any) -> None:
    _notify(world, "ann", 6)
    every = world.rt.db.run(
        lambda cur: [
            notifications._wire({**r, "delivered_at": r["created_at"]})
            for r in cur.execute(
                "SELECT * FROM notifications WHERE user_id = 'ann' ORDER BY created_at, id"
            ).fetchall()
        ]
    )
    cost = [size(n) + 1 for n in every]  # each note and its comma
    exactly_three = sum(cost[:3])
    out, more = world.rt.db.run(
        lambda cur: (claim_undelivered(cur, "ann", exactly_three - 1), cur.connection.rollback())[0]
    )
    assert len(out) == 2 and more
    out, more = world.rt.db.run(
        lambda cur: (claim_undelivered(cur, "ann", sum(cost[:4]) - 1), cur.connection.rollback())[0]
    )
    assert len(out) == 3 and more
    out, more = _claim(world, "ann", exactly_three)
    assert [n["id"] for n in out] == [n["id"] for n in every[:3]] and more
    assert _undelivered(world, "ann") == 3  # only what went into the reply is delivered
    out, more = _claim(world, "ann")
    assert [n["id"] for n in out] == [n["id"] for n in every[3:]] and not more
    assert _undelivered(world, "ann") == 0


def test_at_most_200_per_sync_and_more_only_when_some_are_left(world: Any) -> None:
    _notify(world, "bob", MAX_SYNC_NOTIFICATIONS)
    out, more = _claim(world, "bob")
    assert len(out) == MAX_SYNC_NOTIFICATIONS and not more
    _notify(world, "cat", MAX_SYNC_NOTIFICATIONS + 1)
    out, more = _claim(world, "cat")
    assert len(out) == MAX_SYNC_NOTIFICATIONS and more
    assert _undelivered(world, "cat") == 1
