"""No token in the logs (contract 3.1: "The raw token never appears in a log line").

A run over the real handlers with every log captured at DEBUG: the JSON lines the Powertools logger
writes (stdout in Lambda), every record of the logging module (arguments, extra fields, exception
text), and anything printed (the metrics' EMF lines). It exercises ``$connect`` with a valid ticket
and with refused ones (reused, expired, wrong audience, wrong signature, malformed, not a JWT at all,
missing), frames (valid, invalid, frames carrying a token in a field), heartbeats, ``$disconnect``,
the sweeper, and HTTP API calls with Bearer tokens (valid, expired, wrong signature, malformed, a
non-JWT secret) including ``POST /ws-tickets``, whose answer holds a ticket.

Then no captured line holds a JWT-looking string (``eyJ...\\.eyJ...\\.sig``), nor any token or
ticket of the run, nor its payload or signature part alone, nor the non-JWT secrets. The same
scan (tests/hardening/conftest.py, ``log_scan``) runs after every hardening test: the fuzz, the
faults and the isolation runs are scanned too.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
import uuid
from typing import Any

import jwt
from hardening_support import load_integration_module

OTHER_SECRET = "not-the-secret-0123456789abcdef0123456789"


def forged(settings: Any, *, key: str | None = None, **claims: Any) -> str:
    now = int(time.time())
    base = {
        "sub": "ann",
        "iss": settings.jwt_issuer,
        "aud": "collab-ws",
        "iat": now,
        "exp": now + 120,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode({**base, **claims}, key or settings.ticket_key, algorithm="HS256")


def test_no_token_or_ticket_is_ever_logged(world, settings, caplog, log_scan):
    caplog.set_level(logging.DEBUG)
    helpers = load_integration_module("test_http_helpers")
    api = helpers.Api(settings)

    def http(method: str, path: str, token: str | None, body: Any = helpers.ABSENT, **kw: Any) -> Any:
        return helpers.invoke(helpers.http_event(method, path, token=token, body=body, **kw))

    # Given ann's and bob's access tokens and a workspace made over the HTTP API
    ann_token, bob_token = log_scan.secret(api.token("ann")), log_scan.secret(api.token("bob"))
    wid = http("POST", "/workspaces", ann_token, {"name": "Board"}).body["id"]
    assert http("GET", "/workspaces", bob_token).status == 200
    assert (
        http("POST", f"/workspaces/{wid}/members", ann_token, {"user_id": "bob", "role": "member"}).status
        == 201
    )

    # When the HTTP API is called with good and bad Bearer tokens, and asked for tickets
    not_a_jwt = log_scan.secret(f"sk_live_{secrets.token_hex(16)}")
    bad_tokens = [
        forged(settings, aud=settings.jwt_audience, key=OTHER_SECRET),  # wrong signature
        forged(settings, aud=settings.jwt_audience, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600),
        forged(settings, aud="someone-else"),
        ann_token[:-5],  # truncated signature
        ann_token + "x",
        not_a_jwt,
    ]
    for token in bad_tokens:
        log_scan.secret(token)
        assert http("GET", "/workspaces", token).status == 401
    assert http("GET", "/workspaces", None, headers={"authorization": f"Basic {not_a_jwt}"}).status == 401
    assert http("GET", "/workspaces", None, headers={"authorization": f"Token {ann_token}"}).status == 401
    # a token in a body that fails validation
    assert http("POST", "/workspaces", ann_token, {"name": ann_token * 2}).status == 422
    answer = http("POST", "/ws-tickets", bob_token, {"workspace_id": wid})
    assert answer.status in (200, 201), answer.body
    ticket = log_scan.secret(answer.body["ticket"])
    assert ticket in answer.body["url"]

    # and $connect sees a good ticket, the same ticket again, and refused ones
    bob = world.connect_raw(ticket)
    assert bob["statusCode"] == 200
    assert world.connect_raw(ticket)["statusCode"] == 401  # a second socket, the same ticket: used
    refused = [
        forged(settings, sub="bob", wid=wid, key=OTHER_SECRET),
        forged(settings, sub="bob", wid=wid, iat=int(time.time()) - 900, exp=int(time.time()) - 600),
        forged(settings, sub="bob", wid=wid, aud="collab-api"),
        bob_token,  # an access token is not a ticket
        ticket[:-3],
        not_a_jwt,
        "eyJhbGciOiJIUzI1NiJ9.not-base64!.sig",
        "",
    ]
    for token in refused:
        if token:
            log_scan.secret(token)
        assert world.connect_raw(token)["statusCode"] == 401, token
    assert world.connect_raw(None)["statusCode"] == 401
    outsider = forged(settings, sub="zed", wid=wid)
    log_scan.secret(outsider)
    assert world.connect_raw(outsider, "outsider00001=")["statusCode"] == 200  # Redis alone (v1.3)...
    refused = world.attach("outsider00001=", "zed", wid).send({"action": "sync", "since": None})
    assert refused["type"] == "error" and refused["data"]["code"] == "forbidden"  # ...admission refuses

    # and frames, heartbeats and a disconnect go through the WebSocket handlers, some carrying tokens
    ann = world.connect("ann", wid)
    created = ann.create("plain", description=f"pasted by mistake: {bob_token}")
    assert created["data"]["ok"]
    ann.update(created["data"]["task"]["id"], title=ann_token[:200])
    for frame in (
        {"action": "task.create", "request_id": str(uuid.uuid4()), "task": {"title": ann_token}},  # too long
        {"action": "task.create", "request_id": str(uuid.uuid4()), "task": {"title": "x", ann_token: 1}},
        {"action": ann_token},
        {"action": "sync", "since": ann_token},
        {"action": "task.update", "request_id": ticket, "task_id": str(uuid.uuid4()), "changes": {}},
    ):
        reply = ann.send(frame)
        assert reply is not None and reply["type"] in ("error", "ack"), reply
    ann.send_raw(f'{{"action": "sync", "token": "{ticket}"')  # truncated JSON
    ann.send_raw(ticket)  # the ticket pasted as a frame
    assert ann.heartbeat()["type"] == "heartbeat.ack"
    world.rt.clock.advance(61)
    ann.heartbeat()  # sweeps bob's connection, which never heartbeat
    world.sweep()
    ann.disconnect()

    # Then the logs were captured (the scan is not vacuous)...
    lines = [json.loads(line) for line in "".join(log_scan.lines).splitlines() if line.startswith("{")]
    messages = {entry.get("message") for entry in lines}
    assert {"connect refused", "connected", "request", "published", "disconnected"} <= messages, messages
    assert caplog.records  # and the logging module's records
    # ...and hold no token, ticket, JWT-looking string or registered secret (the fixture checks the
    # rest of the output at teardown; here the log lines alone, with a message on failure)
    leaks = log_scan.leaks([*log_scan.lines, *(str(r.__dict__) for r in caplog.records)])
    assert not leaks, leaks
