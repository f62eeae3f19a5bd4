"""Revocation that cannot be lost, and identity (issue 13)."""

from __future__ import annotations

import threading
import time
from typing import Any

import jwt
import psycopg
import pytest
from test_http_helpers import http_event, invoke

from collab.errors import CollabError, Unavailable


# -- revocation --------------------------------------------------------------------------------
def test_a_removed_member_hears_nothing_after_one_sweep_even_if_redis_failed_during_removal(
    world, monkeypatch
):
    from collab.domain import members, presence, workspaces

    wid = world.workspace("ann", "bob")
    a, b = world.connect("ann", wid), world.connect("bob", wid)
    task = a.create("before")["data"]["task"]

    def redis_down(*args: Any, **kwargs: Any) -> int:
        raise Unavailable("cache unavailable")

    with monkeypatch.context() as m:
        m.setattr(presence, "close_user", redis_down)
        change = members.remove_member(world.rt.db, "ann", wid, "bob")  # committed in Postgres
        try:
            workspaces.settle(world.rt, world.rt.gateway_for(None), change)
        except CollabError:
            pass  # the old code let it escape; either way the connections were not closed
    assert b.cid not in world.sink.deleted
    world.sweep()
    assert b.cid in world.sink.deleted
    world.sink.reset()
    a.update(task["id"], title="secret title")
    assert world.sink.frames(b.cid) == []


def test_an_edit_racing_a_removal_is_refused_or_commits_before_it(world):
    """A removal is in progress (member row deleted, member.removed recorded, not committed yet)
    when the member's edit arrives: the edit waits, and is refused - it never commits after
    ``member.removed``."""
    wid = world.workspace("ann", "bob")
    a, b = world.connect("ann", wid), world.connect("bob", wid)
    task = a.create("t")["data"]["task"]
    removal = psycopg.connect(world.rt.settings.dsn)
    removal.execute("SELECT 1 FROM workspaces WHERE id = %s FOR UPDATE", (wid,))
    removal.execute("DELETE FROM workspace_members WHERE workspace_id = %s AND user_id = 'bob'", (wid,))
    removed_seq = removal.execute(
        "WITH s AS (UPDATE workspaces SET last_seq = last_seq + 1 WHERE id = %s RETURNING last_seq)"
        " INSERT INTO activity (workspace_id, seq, actor_id, type, payload)"
        " SELECT %s, last_seq, 'ann', 'member.removed', '{}' FROM s RETURNING seq",
        (wid, wid),
    ).fetchone()[0]
    replies: list[Any] = []
    edit = threading.Thread(target=lambda: replies.append(b.update(task["id"], title="hijacked")))
    edit.start()
    time.sleep(0.5)  # the edit is now waiting on the removal's locks
    removal.commit()
    removal.close()
    edit.join(20)
    reply = replies[0]["data"]
    if reply["ok"]:
        assert reply["seq"] < removed_seq, "an edit committed after member.removed"
    else:
        assert reply["error"]["code"] == "forbidden"
    row = world.rt.db.run(
        lambda cur: cur.execute("SELECT title FROM tasks WHERE id = %s", (task["id"],)).fetchone()
    )
    assert row["title"] == "t"


# -- identity ----------------------------------------------------------------------------------
def _token(settings: Any, sub: str, **claims: Any) -> str:
    now = int(time.time())
    base = {
        "sub": sub,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + 600,
    }
    return jwt.encode({**base, **claims}, settings.jwt_key, algorithm="HS256")


def _call(settings: Any, method: str, path: str, token: str, body: Any = None) -> Any:
    kw = {} if body is None else {"body": body}
    return invoke(http_event(method, path, token=token, **kw))


def _email_of(rt: Any, uid: str) -> str | None:
    row = rt.db.run(lambda cur: cur.execute("SELECT email FROM users WHERE id = %s", (uid,)).fetchone())
    return None if row is None else row["email"]


def test_an_unverified_email_does_not_take_over_an_invitation(rt, settings):
    """An IdP lets users set their own email without verifying it: the attacker's token says
    ``email_verified: false``; adding a member by that email still adds its real owner."""
    vic = _token(settings, "vic", email="vic@example.test", email_verified=True)
    assert _call(settings, "GET", "/workspaces", vic).status == 200
    mal = _token(settings, "mal", email="VIC@example.test", email_verified=False)
    assert _call(settings, "GET", "/workspaces", mal).status == 200
    assert _email_of(rt, "vic") == "vic@example.test" and _email_of(rt, "mal") is None
    admin = _token(settings, "adm", email="adm@example.test")
    wid = _call(settings, "POST", "/workspaces", admin, {"name": "W"}).body["id"]
    added = _call(
        settings, "POST", f"/workspaces/{wid}/members", admin, {"email": "vic@example.test", "role": "member"}
    )
    assert added.status == 201 and added.body["user_id"] == "vic"


def test_a_verified_email_is_never_moved_off_its_account(rt, settings):
    vic = _token(settings, "vic", email="vic@example.test", email_verified=True)
    _call(settings, "GET", "/workspaces", vic)
    other = _token(settings, "oth", email="Vic@Example.test", email_verified=True)
    assert _call(settings, "GET", "/workspaces", other).status == 200
    assert _email_of(rt, "vic") == "vic@example.test" and _email_of(rt, "oth") is None


def test_an_unverified_holder_gives_way_and_case_does_not_matter(rt, settings):
    old = _token(settings, "old", email="shared@example.test")  # the token did not say
    _call(settings, "GET", "/workspaces", old)
    new = _token(settings, "new", email="SHARED@example.test", email_verified=True)
    _call(settings, "GET", "/workspaces", new)
    assert _email_of(rt, "old") is None and _email_of(rt, "new") == "SHARED@example.test"


# -- keys --------------------------------------------------------------------------------------
class _FakeJwksClient:
    def __init__(self) -> None:
        self.sets: list[dict[str, Any]] = []
        self.calls = 0

    def get_jwk_set(self, refresh: bool = False) -> Any:
        self.calls += 1
        return jwt.PyJWKSet.from_dict(self.sets[-1])


def _jwk(kid: str) -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


def test_the_jwks_cache_drops_withdrawn_keys_and_refreshes_on_unknown_kid_at_a_bounded_rate():
    from collab.auth.tokens import JwksCache

    cache = JwksCache("https://idp.example.test/jwks", ttl_s=300, min_refresh_s=30)
    fake = _FakeJwksClient()
    cache.client = fake  # type: ignore[assignment]
    k1, k2 = _jwk("k1"), _jwk("k2")
    fake.sets.append({"keys": [k1]})
    assert cache.key("k1", now=0) is not None and fake.calls == 1
    # an unknown kid refetches, but a flood of forged kids does not hammer the IdP
    for i in range(50):
        with pytest.raises(CollabError):
            cache.key(f"forged-{i}", now=40)
    assert fake.calls == 2
    fake.sets.append({"keys": [k1, k2]})  # the IdP adds a key
    assert cache.key("k2", now=80) is not None and fake.calls == 3
    fake.sets.append({"keys": [k2]})  # ... and withdraws k1: gone once the TTL passed
    assert cache.key("k1", now=300) is not None
    with pytest.raises(CollabError):
        cache.key("k1", now=400)


def test_a_rotated_secret_is_picked_up_within_the_ttl(monkeypatch):
    from collab import config

    value = {"v": "first-secret-0123456789abcdef0123"}
    s = config.load_settings(
        {"DATABASE_URL": "postgresql://x/y", "REDIS_URL": "redis://r", "JWT_SECRET_ARN": "arn:jwt"},
        secrets=lambda arn: value["v"],
    )
    assert s.jwt_key == value["v"]
    before = s.ticket_key
    assert before != s.jwt_key  # tickets are signed with their own, derived key
    value["v"] = "second-secret-0123456789abcdef012"
    assert s.jwt_key != value["v"]  # cached within the TTL
    monkeypatch.setattr(s._secret_cache, "_ttl", -1)  # the cache's 5 minutes have passed
    assert s.jwt_key == value["v"] and s.ticket_key != before
