"""Postgres adapter (psycopg 3).

One connection per container, reused across invocations. Connections are per thread, which in
Lambda (one invocation at a time) is exactly one; under the local gateway, which runs handlers
concurrently in threads as Lambda runs containers, each thread is its own "container".

:meth:`Database.run` is the only way domain code touches Postgres: it runs a function in one
transaction. When the connection turns out to be broken (idle timeout, failover, proxy restart)
before COMMIT was sent, it reconnects and runs the function once more; a failure during COMMIT is
never retried blindly (the outcome is unknown) and surfaces as :class:`Unavailable`.
SQL is always parameterised; timestamps come from the server (``now()``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row

from collab.errors import CollabError, Unavailable

T = TypeVar("T")
Cursor = psycopg.Cursor[dict[str, Any]]


class Database:
    def __init__(
        self, dsn: str | Callable[[], str], *, connect_timeout: int = 2, application_name: str = "collab"
    ) -> None:
        # A callable is asked again at every (re)connect: a rotated password is picked up
        self._dsn = dsn
        self._kwargs = {"connect_timeout": connect_timeout, "application_name": application_name}
        self._local = threading.local()
        self.transactions = 0  # counted for benchmarks: one per mutation is the target

    def _connect(self) -> psycopg.Connection[dict[str, Any]]:
        try:
            dsn = self._dsn() if callable(self._dsn) else self._dsn
            return psycopg.connect(dsn, row_factory=dict_row, **self._kwargs)  # type: ignore[arg-type]
        except psycopg.OperationalError as exc:
            raise Unavailable("database unavailable") from exc

    def _connection(self) -> psycopg.Connection[dict[str, Any]]:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def _discard(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection may fail; it is gone anyway
                pass

    def run(self, fn: Callable[[Cursor], T]) -> T:
        """Run ``fn(cursor)`` in one transaction and commit; roll back on any exception.

        A constraint violation we expect (a full workspace, an unknown assignee, a duplicate id)
        comes out as the client error it means (:func:`translate_integrity`)."""
        for attempt in (1, 2):
            conn = self._connection()
            committing = False
            try:
                with conn.cursor() as cur:
                    result = fn(cur)
                committing = True
                conn.commit()
                self.transactions += 1
                return result
            except psycopg.OperationalError as exc:
                broken = conn.broken or conn.closed
                if broken:
                    self._discard()
                else:
                    conn.rollback()
                if broken and not committing and attempt == 1:
                    continue
                raise Unavailable("database unavailable") from exc
            except psycopg.errors.IntegrityError as exc:
                conn.rollback()
                mapped = translate_integrity(exc)
                if mapped is None:
                    raise
                raise mapped from exc
            except BaseException:
                if not (conn.broken or conn.closed):
                    conn.rollback()
                else:
                    self._discard()
                raise
        raise Unavailable("database unavailable")  # pragma: no cover - loop always returns or raises

    def close(self) -> None:
        self._discard()


def translate_integrity(exc: psycopg.Error) -> CollabError | None:
    """Map a constraint violation to a client error (None when it is not one we expect)."""
    from collab.errors import Conflict, ValidationError

    diag = getattr(exc, "diag", None)
    constraint = (diag.constraint_name if diag else None) or ""
    if isinstance(exc, psycopg.errors.UniqueViolation):
        return Conflict("already exists")
    if isinstance(exc, psycopg.errors.ForeignKeyViolation):
        if "assigned_to" in constraint:
            return ValidationError("assigned_to: unknown user", field="assigned_to")
        return ValidationError("refers to something that does not exist")
    if isinstance(exc, psycopg.errors.CheckViolation):
        if "member_count" in constraint:
            return Conflict("a workspace has at most 1000 members")
        return ValidationError(f"invalid value ({constraint})")
    return None
