"""The request ledger asked directly (collab.domain.ledger.execute), row by row: a first execution
claims its key and records its answer in its own transaction, a retry gets that answer without
running again, a refusal (4xx) is recorded, a 5xx never is, a key reused for another request is
refused. test_exactly_once.py drives the same through the routes."""

from __future__ import annotations

from typing import Any

import pytest

from collab.domain import ledger
from collab.domain.ledger import Answer, Entry, KeyReused
from collab.errors import NotFound, Unavailable


def _rows(world: Any) -> list[dict[str, Any]]:
    return world.rt.db.run(
        lambda cur: cur.execute(
            "SELECT user_id, request_key, fingerprint, status, answer FROM request_ledger ORDER BY request_key"
        ).fetchall()
    )


def _users(world: Any) -> list[str]:
    return world.rt.db.run(
        lambda cur: [r["id"] for r in cur.execute("SELECT id FROM users ORDER BY id").fetchall()]
    )


def _execute(world: Any, entry: Entry, user: str, calls: list[str]) -> tuple[Any, Answer]:
    def mutate(db: Any) -> str:
        def tx(cur: Any) -> str:
            calls.append(user)
            cur.execute("INSERT INTO users (id) VALUES (%s)", (user,))
            return user

        return db.run(tx)

    return ledger.execute(
        world.rt.db,
        entry,
        mutate,
        lambda r: Answer(201, f'{{"id":"{r}"}}'),
        lambda e: Answer(e.status, e.message),
    )


def test_a_first_execution_records_its_answer_and_a_retry_gets_it_without_running(world: Any) -> None:
    calls: list[str] = []
    entry = Entry("ann", "k1", "fp-1")
    assert _execute(world, entry, "u1", calls) == ("u1", Answer(201, '{"id":"u1"}'))
    assert _rows(world) == [
        {"user_id": "ann", "request_key": "k1", "fingerprint": "fp-1", "status": 201, "answer": '{"id":"u1"}'}
    ]
    assert _execute(world, entry, "u2", calls) == (None, Answer(201, '{"id":"u1"}'))
    assert calls == ["u1"] and _users(world) == ["u1"]
    # another user's same key is their own request
    assert _execute(world, Entry("bob", "k1", "fp-1"), "u3", calls)[0] == "u3"


def test_a_key_reused_for_another_request_is_refused_unless_unfingerprinted(world: Any) -> None:
    calls: list[str] = []
    _execute(world, Entry("ann", "k1", "fp-1"), "u1", calls)
    with pytest.raises(KeyReused) as reused:
        _execute(world, Entry("ann", "k1", "fp-2"), "u2", calls)
    assert reused.value.to_wire() == {
        "code": "conflict",
        "message": "this idempotency key was used for a different request",
        "field": "Idempotency-Key",
    }
    # a frame's request_id carries no fingerprint: its retry is not compared
    assert _execute(world, Entry("ann", "k1"), "u3", calls) == (None, Answer(201, '{"id":"u1"}'))
    assert calls == ["u1"]


def test_a_refusal_is_recorded_and_stays_refused(world: Any) -> None:
    entry = Entry("ann", "k1", "fp")

    def refused(db: Any) -> None:
        raise NotFound("task not found")

    answer = ledger.execute(
        world.rt.db, entry, refused, lambda r: Answer(200, ""), lambda e: Answer(e.status, e.message)
    )
    assert answer == (None, Answer(404, "task not found"))
    assert [(r["status"], r["answer"]) for r in _rows(world)] == [(404, "task not found")]
    calls: list[str] = []
    assert _execute(world, entry, "u1", calls) == (
        None,
        Answer(404, "task not found"),
    )  # even though it would work now
    assert calls == []


def test_a_5xx_is_never_recorded(world: Any) -> None:
    def down(db: Any) -> None:
        raise Unavailable("database unavailable")

    with pytest.raises(Unavailable):
        ledger.execute(
            world.rt.db, Entry("ann", "k1"), down, lambda r: Answer(200, ""), lambda e: Answer(500, "")
        )
    assert _rows(world) == []


def test_a_refusal_recorded_meanwhile_wins_over_this_one(world: Any) -> None:
    entry = Entry("ann", "k1")
    first = ledger.record_refusal(world.rt.db, entry, Answer(409, "first"))
    assert first == Answer(409, "first")
    assert ledger.record_refusal(world.rt.db, entry, Answer(403, "second")) == Answer(409, "first")
    assert [(r["status"], r["answer"]) for r in _rows(world)] == [(409, "first")]


def test_a_second_transaction_of_one_request_passes_through(world: Any) -> None:
    ledgered = ledger.Ledgered(world.rt.db, Entry("ann", "k1"), lambda r: Answer(200, str(r)))
    assert ledgered.answer is None
    assert ledgered.run(lambda cur: 1) == 1
    assert ledgered.answer == Answer(200, "1")
    assert ledgered.run(lambda cur: 2) == 2  # not claimed again, not recorded again
    assert ledgered.answer == Answer(200, "1")
    assert [(r["status"], r["answer"]) for r in _rows(world)] == [(200, "1")]
