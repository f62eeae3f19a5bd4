"""``collab.domain.users.upsert_user`` directly: what a token's claims do to the caller's user row,
and to the row of another account holding the same email."""

from __future__ import annotations

from typing import Any

from test_interleavings import LOCK_WAIT_S, InThread, wait_until_a_transaction_waits_for_a_lock

from collab.auth.tokens import Identity
from collab.domain.users import upsert_user


def row(rt: Any, uid: str) -> dict[str, Any]:
    got = rt.db.run(
        lambda cur: cur.execute(
            "SELECT email, email_verified, display_name, updated_at FROM users WHERE id = %s", (uid,)
        ).fetchone()
    )
    assert got is not None, uid
    return dict(got)


def test_the_email_is_trimmed_cut_to_254_and_blank_means_absent(rt):
    upsert_user(rt.db, Identity("ann", email="  ann@example.test \t", name="Ann"))
    assert row(rt, "ann")["email"] == "ann@example.test"
    upsert_user(rt.db, Identity("ann", email="   ", name="Ann"))  # blank: keeps the stored one
    assert row(rt, "ann")["email"] == "ann@example.test"
    long = "a" * 250 + "@example.test"
    upsert_user(rt.db, Identity("bob", email=long))
    assert row(rt, "bob")["email"] == long[:254]


def test_email_verified_is_stored_only_when_the_token_says_true(rt):
    upsert_user(rt.db, Identity("ann", email="ann@example.test"))  # the token does not say
    assert row(rt, "ann")["email_verified"] is False
    upsert_user(rt.db, Identity("ann", email="ann@example.test", email_verified=True))
    assert row(rt, "ann")["email_verified"] is True
    upsert_user(rt.db, Identity("ann", email="other@example.test", email_verified=False))
    assert (row(rt, "ann")["email"], row(rt, "ann")["email_verified"]) == ("ann@example.test", True)
    upsert_user(rt.db, Identity("ann", email="ann@example.test"))  # a token that does not say: unverified
    assert row(rt, "ann")["email_verified"] is False


def test_an_unchanged_token_writes_nothing(rt):
    """Every HTTP request refreshes the caller once per container: a token that says what is
    stored must not rewrite the row (updated_at stays)."""
    ann = Identity("ann", email="ann@example.test", name="Ann", email_verified=True)
    upsert_user(rt.db, ann)
    first = row(rt, "ann")["updated_at"]
    upsert_user(rt.db, ann)
    upsert_user(rt.db, Identity("ann"))  # no claims at all: nothing to change either
    assert row(rt, "ann")["updated_at"] == first
    upsert_user(rt.db, Identity("ann", email="ann@example.test", name="Ann B", email_verified=True))
    assert row(rt, "ann")["updated_at"] > first and row(rt, "ann")["display_name"] == "Ann B"


def test_a_blank_stored_name_is_filled_even_by_a_token_without_a_name(rt):
    rt.db.run(lambda cur: cur.execute("INSERT INTO users (id, display_name) VALUES ('cat', '')"))
    upsert_user(rt.db, Identity("cat", email="cat@example.test"))
    assert row(rt, "cat")["display_name"] == "cat@example.test"
    upsert_user(rt.db, Identity("cat", email="cat2@example.test"))  # a name now: an email does not replace it
    assert row(rt, "cat")["display_name"] == "cat@example.test"


def test_an_email_moves_off_an_unverified_holder_which_is_left_without_one(rt):
    upsert_user(rt.db, Identity("old", email="shared@example.test", name="Old"))
    before = row(rt, "old")["updated_at"]
    upsert_user(rt.db, Identity("new", email="Shared@Example.test", name="New"))
    old, new = row(rt, "old"), row(rt, "new")
    assert (old["email"], old["email_verified"], old["display_name"]) == (None, False, "Old")
    assert old["updated_at"] > before
    assert (new["email"], new["email_verified"]) == ("Shared@Example.test", False)


def test_a_verified_holder_keeps_its_email_and_the_newcomer_keeps_theirs(rt):
    upsert_user(rt.db, Identity("vic", email="vic@example.test", email_verified=True))
    upsert_user(rt.db, Identity("oth", email="oth@example.test", email_verified=True))
    upsert_user(rt.db, Identity("oth", email="VIC@example.test", email_verified=True))
    assert (row(rt, "vic")["email"], row(rt, "vic")["email_verified"]) == ("vic@example.test", True)
    assert (row(rt, "oth")["email"], row(rt, "oth")["email_verified"]) == ("oth@example.test", True)


def test_two_first_sights_of_one_email_at_once_settle_on_the_newest(rt, held):
    """Neither account exists; both tokens carry the same unverified email. The second's insert
    waits on the first's uncommitted row in the unique email index, then fails with a unique
    violation: run once more, it finds the first as the holder and moves the email."""
    first = InThread(lambda: upsert_user(held, Identity("first", email="same@example.test")))
    assert held.reached.wait(LOCK_WAIT_S)
    second = InThread(lambda: upsert_user(rt.db, Identity("second", email="SAME@example.test")))
    wait_until_a_transaction_waits_for_a_lock(rt)
    held.release.set()
    first.result()
    second.result()
    assert row(rt, "first")["email"] is None and row(rt, "second")["email"] == "SAME@example.test"
