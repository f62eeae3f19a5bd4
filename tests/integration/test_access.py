"""Who may do what (collab.domain.access), asked of Postgres directly: roles, the refusals and their
messages, and the member row's lock that orders a mutation before a removal."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from collab.domain import access
from collab.errors import Forbidden, NotFound


@pytest.fixture
def board(world: Any) -> str:
    wid = world.workspace("olga", "mia", "adam")
    world.user("stranger")
    world.rt.db.run(
        lambda cur: cur.execute(
            "UPDATE workspace_members SET role = 'admin' WHERE workspace_id = %s AND user_id = 'adam'", (wid,)
        )
    )
    return wid


def test_role_of_names_the_role_or_none(world: Any, board: str) -> None:
    roles = world.rt.db.run(
        lambda cur: [access.role_of(cur, board, u) for u in ("olga", "adam", "mia", "stranger")]
    )
    assert roles == ["owner", "admin", "member", None]
    assert world.rt.db.run(lambda cur: access.lock_membership(cur, board, "mia")) is True
    assert world.rt.db.run(lambda cur: access.lock_membership(cur, board, "stranger")) is False


@pytest.mark.parametrize(
    ("user", "at_least", "answer"),
    [
        ("mia", "member", "member"),
        ("adam", "member", "admin"),
        ("olga", "admin", "owner"),
        ("adam", "admin", "admin"),
        ("olga", "owner", "owner"),
        ("mia", "admin", "requires the admin role"),
        ("adam", "owner", "requires the owner role"),
        ("stranger", "member", "not a member of this workspace"),
    ],
)
def test_require_member_answers_the_role_or_why_not(
    world: Any, board: str, user: str, at_least: str, answer: str
) -> None:
    def ask(cur: Any) -> str:
        return access.require_member(cur, board, user, at_least=at_least)

    if answer in access.RANK:
        assert world.rt.db.run(ask) == answer
    else:
        with pytest.raises(Forbidden) as refused:
            world.rt.db.run(ask)
        assert refused.value.message == answer


def test_require_member_of_a_workspace_that_does_not_exist_is_not_found(world: Any, board: str) -> None:
    with pytest.raises(NotFound) as missing:
        world.rt.db.run(lambda cur: access.require_member(cur, str(uuid.uuid4()), "mia"))
    assert missing.value.message == "workspace not found"
    assert (
        world.rt.db.run(lambda cur: access.require_member(cur, board, "mia")) == "member"
    )  # at least member


def _removal_waits(world: Any, board: str, **kw: Any) -> bool:
    """Whether deleting mia's member row waits for a transaction that checked her (with ``kw``)."""
    conn = psycopg.connect(world.rt.settings.dsn, row_factory=dict_row)
    try:
        access.require_member(conn.cursor(), board, "mia", **kw)  # the transaction stays open
        with psycopg.connect(world.rt.settings.dsn, autocommit=True) as other:
            other.execute("SET lock_timeout = '200ms'")
            try:
                other.execute(
                    "DELETE FROM workspace_members WHERE workspace_id = %s AND user_id = 'mia'", (board,)
                )
            except psycopg.errors.LockNotAvailable:
                return True
            return False
    finally:
        conn.rollback()
        conn.close()


def test_a_locked_check_holds_off_a_removal_until_its_transaction_ends(world: Any, board: str) -> None:
    assert _removal_waits(world, board, lock=True) is True
    assert _removal_waits(world, board) is False  # unlocked by default: the removal goes through
