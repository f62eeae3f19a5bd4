"""The request ledger: exactly-once for mutations, durable in Postgres.

Every mutating request carries a key chosen by its client (a WebSocket frame's ``request_id``, an
HTTP request's ``Idempotency-Key``). Its first answer is written to ``request_ledger`` **in the
mutation's own transaction**, so the answer exists exactly when the change does. A retry - after
Redis lost its state, after a COMMIT whose outcome was unknown (the connection broke while
committing), from another connection - finds the row and gets the first answer; nothing changes.

Redis stays the fast path in front (``Store.begin`` claims a request id and keeps its answer for
ten minutes, ``REQUEST_TTL_S``); the ledger is what decides when Redis has forgotten.

How a transaction claims its key: ``INSERT ... ON CONFLICT DO NOTHING`` on the primary key. A
concurrent attempt with the same key blocks on the first one's uncommitted row and, once that
commits, sees the conflict and reads its answer; if the first rolled back, the second proceeds.

Answers the domain refused (4xx: not found, conflict, forbidden, ...) are recorded too, in a
transaction of their own, so a refused request stays refused on retry even if the world changed
since (an assignee who joined later must not make an old, refused create apply). 5xx answers are
never recorded: the client retries them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from collab.adapters.postgres.database import Cursor, Database
from collab.errors import CollabError, Conflict

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Entry:
    """One request's ledger key: the user, the key, and a fingerprint of what it asked for."""

    user_id: str
    key: str
    fingerprint: str = ""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: str


class KeyReused(Conflict):
    """The key was first used for a different request (another body or route): refused, never
    replayed, never recorded. A conflict with what the server holds (409), not a malformed request:
    the request itself is valid (docs/http-api.md: state answers 403, 404 or 409, never 422)."""


class Replayed(Exception):
    """The request was answered before: this is that answer. Raised inside the transaction so that
    it rolls back and nothing changes."""

    def __init__(self, answer: Answer) -> None:
        super().__init__()
        self.answer = answer


def fingerprint(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else p.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()[:32]


def _claim(cur: Cursor, entry: Entry) -> Answer | None:
    """Claim the key in this transaction, or return the answer it already has."""
    row = cur.execute(
        "INSERT INTO request_ledger (user_id, request_key, fingerprint) VALUES (%s, %s, %s)"
        " ON CONFLICT DO NOTHING RETURNING 1",
        (entry.user_id, entry.key, entry.fingerprint),
    ).fetchone()
    if row is not None:
        return None
    return _stored(cur, entry)


def _stored(cur: Cursor, entry: Entry) -> Answer:
    row = cur.execute(
        "SELECT fingerprint, status, answer FROM request_ledger WHERE user_id = %s AND request_key = %s",
        (entry.user_id, entry.key),
    ).fetchone()
    assert row is not None and row["answer"] is not None  # written in the claiming transaction
    if entry.fingerprint and row["fingerprint"] != entry.fingerprint:
        raise KeyReused("this idempotency key was used for a different request", field="Idempotency-Key")
    return Answer(int(row["status"]), str(row["answer"]))


def _write(cur: Cursor, entry: Entry, answer: Answer) -> None:
    cur.execute(
        "UPDATE request_ledger SET status = %s, answer = %s WHERE user_id = %s AND request_key = %s",
        (answer.status, answer.body, entry.user_id, entry.key),
    )


class Ledgered:
    """A :class:`Database` for one request: its (first) transaction claims the request's key
    and records the answer ``answer_of(result)`` before it commits.

    The domain's mutation functions run exactly one transaction; they take this in place of the
    database and need not know about the ledger. A second ``run`` (none today) passes through."""

    def __init__(self, db: Database, entry: Entry, answer_of: Callable[[Any], Answer]) -> None:
        self.db = db
        self.entry = entry
        self.answer_of = answer_of
        self._used = False
        self.answer: Answer | None = None  # the answer written, once the transaction ran

    def run(self, fn: Callable[[Cursor], T]) -> T:
        if self._used:
            return self.db.run(fn)
        self._used = True

        def tx(cur: Cursor) -> T:
            prior = _claim(cur, self.entry)
            if prior is not None:
                raise Replayed(prior)
            result = fn(cur)
            self.answer = self.answer_of(result)
            _write(cur, self.entry, self.answer)
            return result

        return self.db.run(tx)


def record_refusal(db: Database, entry: Entry, answer: Answer) -> Answer:
    """Record a refused request's answer (4xx) in a transaction of its own; when another attempt
    answered first, that answer wins and is returned."""

    def tx(cur: Cursor) -> Answer:
        prior = _claim(cur, entry)
        if prior is not None:
            return prior
        _write(cur, entry, answer)
        return answer

    return db.run(tx)


def execute(
    db: Database,
    entry: Entry,
    mutate: Callable[[Database], T],
    answer_of: Callable[[T], Answer],
    refused: Callable[[CollabError], Answer],
) -> tuple[T | None, Answer]:
    """Run ``mutate`` under the ledger. Returns (result, answer) for a first execution, (None,
    answer) for a replay or a refusal. 5xx errors propagate (nothing recorded: retry)."""
    ledgered = Ledgered(db, entry, answer_of)
    try:
        result = mutate(ledgered)  # type: ignore[arg-type]
    except Replayed as r:
        return None, r.answer
    except KeyReused:
        raise
    except CollabError as exc:
        if exc.status >= 500:
            raise
        return None, record_refusal(db, entry, refused(exc))
    return result, ledgered.answer or answer_of(result)
