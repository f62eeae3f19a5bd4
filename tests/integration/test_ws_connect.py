"""$connect: every refusal answers with the contract's status, and no token reaches a log line."""

import base64
import dataclasses
import json
import time
import uuid

import jwt
import pytest

from tests.conftest import TEST_JWT_SECRET


def ticket_claims(uid, wid, **over):
    now = int(time.time())
    c = {
        "sub": uid,
        "wid": wid,
        "aud": "collab-ws",
        "iss": "collab",
        "iat": now,
        "exp": now + 300,
        "jti": f"jti-{now}-{uid}-{len(over)}",
    }
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def test_connect_accepts_a_member_and_registers_the_connection(world):
    wid = world.workspace("ann", "bob")
    out = world.connect_raw(world.ticket("bob", wid), "conn-bob-1=")
    assert out == {"statusCode": 200}
    info = world.rt.store.connection("conn-bob-1=")
    assert (info.workspace_id, info.user_id) == (wid, "bob")
    assert world.rt.store.workspace_connections(wid) == {"conn-bob-1=": "bob"}


def test_each_refusal_has_the_contract_status_and_no_token_is_logged(world, capsys, caplog):
    wid = world.workspace("ann", "bob")
    now = int(time.time())
    key = world.rt.settings.ticket_key  # tickets have their own key, derived from the secret
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps(ticket_claims("bob", wid)).encode()).rstrip(b"=").decode()
    from cryptography.hazmat.primitives.asymmetric import rsa

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cases = {
        "missing": (None, 401),
        "garbage": ("garbage.token.value", 401),
        "expired": (
            jwt.encode(ticket_claims("bob", wid, iat=now - 400, exp=now - 100), key),
            401,
        ),
        "not yet valid": (
            jwt.encode(ticket_claims("bob", wid, iat=now + 200, exp=now + 400), key),
            401,
        ),
        "alg none": (f"{header}.{body}.", 401),
        "HS/RS confusion": (jwt.encode(ticket_claims("bob", wid), rsa_key, algorithm="RS256"), 401),
        "wrong aud": (jwt.encode(ticket_claims("bob", wid, aud="collab-api"), key), 401),
        "wrong iss": (jwt.encode(ticket_claims("bob", wid, iss="evil"), key), 401),
        "bad signature": (jwt.encode(ticket_claims("bob", wid), "x" * 40), 401),
        # the access tokens' secret does not sign tickets (issue 13): their key is derived from it
        "signed with the access-token secret": (jwt.encode(ticket_claims("bob", wid), TEST_JWT_SECRET), 401),
        "missing claims": (jwt.encode(ticket_claims("bob", wid, jti=None), key), 401),
        "too long-lived": (jwt.encode(ticket_claims("bob", wid, exp=now + 3600), key), 401),
    }
    tokens = []
    for name, (token, status) in cases.items():
        out = world.connect_raw(token)
        assert out["statusCode"] == status, name
        assert json.loads(out["body"])["error"]["code"] == ("forbidden" if status == 403 else "unauthorized")
        if token:
            tokens.append(token)
    # a ticket works once
    t = world.ticket("bob", wid)
    tokens.append(t)
    assert world.connect_raw(t)["statusCode"] == 200
    assert world.connect_raw(t)["statusCode"] == 401
    logs = capsys.readouterr().out + caplog.text
    assert "connect refused" in logs  # the refusals are logged...
    for token in tokens:  # ...but never the token, nor its signature
        assert token not in logs
        assert token.split(".")[-1] not in logs or not token.split(".")[-1]
    assert world.rt.store.workspace_connections(wid) == {
        next(iter(world.rt.store.workspace_connections(wid))): "bob"
    }


def _activity(world, wid):
    return world.rt.db.run(
        lambda cur: cur.execute(
            "SELECT count(*) AS n FROM activity WHERE workspace_id = %s", (wid,)
        ).fetchone()["n"]
    )


def _refused_at_admission(world, conn, code):
    """The connection's first frame is refused with ``code``; the connection is removed and closed,
    and it never became a fan-out target."""
    gone_before = len(world.sink.deleted)
    out = conn.send({"action": "sync", "since": None})
    assert out["type"] == "error" and out["data"]["code"] == code, out
    assert world.rt.store.connection(conn.cid) is None
    assert conn.cid not in world.rt.store.workspace_connections(conn.wid)
    assert conn.cid in world.sink.deleted[gone_before:]


def test_a_ticket_for_another_workspace_opens_a_connection_that_is_refused_at_its_first_frame(world):
    """$connect uses Redis alone; the membership is checked by the first frame (admission)."""
    wid = world.workspace("ann", "bob")
    other = world.workspace("ann")
    cid = "outsider0000001="
    assert world.connect_raw(world.ticket("bob", other), cid)["statusCode"] == 200
    conn = world.attach(cid, "bob", other)
    before = _activity(world, other)
    # any first frame is refused, a mutation too: nothing changes
    out = conn.send({"action": "task.create", "request_id": str(uuid.uuid4()), "task": {"title": "in"}})
    assert out["type"] == "error" and out["data"]["code"] == "forbidden"
    assert world.rt.store.connection(cid) is None and _activity(world, other) == before
    assert world.connect("bob", wid).send({"action": "sync", "since": None})["type"] == "sync"


def test_a_removed_member_ticket_stops_working(world):
    wid = world.workspace("ann", "bob")
    ann = world.connect("ann", wid)
    t = world.ticket("bob", wid)
    world.remove_member(wid, "bob")
    cid = "removed00000001="
    assert world.connect_raw(t, cid)["statusCode"] == 200
    posts = len(world.sink.frames(ann.cid))
    _refused_at_admission(world, world.attach(cid, "bob", wid), "forbidden")
    assert len(world.sink.frames(ann.cid)) == posts  # never announced: peers heard nothing


def test_the_first_frame_names_the_member_and_spends_the_ticket_once(world):
    wid = world.workspace("ann", "bob")
    ann = world.connect("ann", wid)
    cid = "admitted0000001="
    assert world.connect_raw(world.ticket("bob", wid), cid)["statusCode"] == 200
    pending = world.rt.store.connection(cid)
    assert pending.display_name == "" and pending.ticket_jti and not pending.admitted
    bob = world.attach(cid, "bob", wid)
    assert bob.send({"action": "sync", "since": None})["type"] == "sync"
    info = world.rt.store.connection(cid)
    assert info.admitted and info.display_name == "Bob"
    joined = [m for m in world.sink.frames(ann.cid) if m["type"] == "presence.joined"]
    assert joined[-1]["data"]["user"]["display_name"] == "Bob"
    # admitted once: the next frames do not touch used_tickets again, even from a cold container
    world.rt.connections.clear()
    rows = world.rt.db.run(
        lambda cur: cur.execute("SELECT jti, connection_id FROM used_tickets ORDER BY jti").fetchall()
    )
    assert rows and rows[-1] is not None and cid in [r["connection_id"] for r in rows]
    assert [r["jti"] for r in rows if r["connection_id"] == cid] == [pending.ticket_jti]
    assert bob.send({"action": "sync", "since": None})["type"] == "sync"
    again = world.rt.db.run(
        lambda cur: cur.execute("SELECT jti, connection_id FROM used_tickets ORDER BY jti").fetchall()
    )
    assert again == rows


def test_admitting_the_same_connection_again_is_not_a_replay(world):
    """A retry of the admission (a commit whose outcome was unknown, or Redis that did not record it)
    admits the connection again; another connection with the same ticket is refused."""
    from collab.domain import admission

    wid = world.workspace("ann", "bob")
    cid = "retried00000001="
    assert world.connect_raw(world.ticket("bob", wid), cid)["statusCode"] == 200
    pending = world.rt.store.connection(cid)
    assert admission.admit(world.rt, pending).admitted
    assert admission.admit(world.rt, pending).admitted  # the same connection: admitted again
    from collab.errors import Unauthorized

    with pytest.raises(Unauthorized):
        admission.admit(world.rt, dataclasses.replace(pending, connection_id="another0000001="))


def test_a_member_removed_before_the_first_sync_is_not_admitted_and_told_why(world):
    from collab.domain import admission
    from collab.errors import Forbidden

    wid = world.workspace("ann", "bob")
    cid = "removed00000001="
    assert world.connect_raw(world.ticket("bob", wid), cid)["statusCode"] == 200
    world.remove_member(wid, "bob")
    with pytest.raises(Forbidden) as refused:
        admission.admit(world.rt, world.rt.store.connection(cid))
    assert refused.value.message == "not a member of this workspace"


def test_connection_attempts_are_rate_limited_per_user(world):
    from collab.config import Limits

    CONNECT_LIMIT = Limits().connect_attempts_per_minute
    # spread over workspaces: at most 10 live connections of one user to one workspace
    wids = [world.workspace("ann", "bob") for _ in range(4)]
    wid = wids[0]

    statuses = [
        world.connect_raw(world.ticket("bob", wids[i % 4]))["statusCode"] for i in range(CONNECT_LIMIT + 2)
    ]
    assert statuses[:CONNECT_LIMIT] == [200] * CONNECT_LIMIT
    assert statuses[CONNECT_LIMIT:] == [429, 429]
    out = world.connect_raw(world.ticket("bob", wid))
    assert json.loads(out["body"])["error"]["retry_after_ms"] > 0
    # another user is not affected; a minute later bob may connect again
    assert world.connect_raw(world.ticket("ann", wid))["statusCode"] == 200
    world.rt.clock.advance(61)
    assert world.connect_raw(world.ticket("bob", wid))["statusCode"] == 200


def test_a_removal_between_connect_and_the_first_sync_leaves_no_target(world):
    """The removal commits (and closes the user's connections) after $connect registered the
    connection and before its first frame: the first frame is refused, nothing was announced."""
    from collab.domain import presence

    wid = world.workspace("ann", "bob")
    ann = world.connect("ann", wid)
    out = world.connect_raw(world.ticket("bob", wid), "racing0000001=")
    assert out["statusCode"] == 200
    world.remove_member(wid, "bob")
    presence.close_user(world.rt, world.rt.gateway_for(None), wid, "bob")
    conn = world.attach("racing0000001=", "bob", wid)
    reply = conn.send({"action": "sync", "since": None})
    assert reply["type"] == "error" and reply["data"]["code"] in ("forbidden", "unauthorized")
    assert world.rt.store.workspace_connections(wid) == {ann.cid: "ann"}
    assert world.rt.store.connection("racing0000001=") is None
    assert not [m for m in world.sink.frames(ann.cid) if m["type"] == "presence.joined"]


def test_connect_checks_the_origin_against_the_allowlist(world, monkeypatch):
    wid = world.workspace("ann", "bob")
    allow = world.rt.settings.model_copy(update={"cors_origins": "https://board.example.com"})
    monkeypatch.setattr(world.rt, "settings", allow)

    def with_origin(origin):
        ev = world.connect_event(world.ticket("bob", wid))
        if origin is not None:
            ev.setdefault("headers", {})["Origin"] = origin
        from functions.connect.handler import handler

        return handler(ev, world.context)["statusCode"]

    assert with_origin("https://evil.example") == 403
    assert with_origin("https://board.example.com") == 200
    assert with_origin(None) == 200  # not a browser: nothing to check
