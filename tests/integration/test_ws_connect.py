"""$connect: every refusal answers with the contract's status, and no token reaches a log line."""

import base64
import json
import time

import jwt

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
    other = world.workspace("zed", name="Other")
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
        "another workspace": (world.ticket("bob", other), 403),
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


def test_a_removed_member_ticket_stops_working(world):
    wid = world.workspace("ann", "bob")
    t = world.ticket("bob", wid)
    world.remove_member(wid, "bob")
    assert world.connect_raw(t)["statusCode"] == 403


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


def test_a_removal_between_the_membership_check_and_registration_still_refuses(world, monkeypatch):
    """The removal commits (and closes the user's connections) after $connect's first membership
    check but before it registers the connection: the connection must not survive."""
    from collab.domain import presence
    from collab.ws import connect

    wid = world.workspace("ann", "bob")
    real = connect._member_name
    calls = []

    def racing(rt, w, u, **kw):
        name = real(rt, w, u, **kw)
        if not calls:  # right after the first check passes, the removal happens
            world.remove_member(w, u)
            presence.close_user(rt, rt.gateway_for(None), w, u)
        calls.append(u)
        return name

    monkeypatch.setattr(connect, "_member_name", racing)
    out = world.connect_raw(world.ticket("bob", wid), "racing=")
    assert out["statusCode"] == 403
    assert world.rt.store.workspace_connections(wid) == {}
    assert world.rt.store.connection("racing=") is None


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
