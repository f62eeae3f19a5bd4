"""The HTTP API's edges: tickets, activity and presence, notifications, and every malformed,
unauthenticated or oversized request answered with the right status and the one error body."""

from __future__ import annotations

import base64
import copy
import json
import time
import uuid
from datetime import datetime
from typing import Any

import jwt
import pytest
from test_http_helpers import ROOT, Api, LambdaContext, http_event, invoke, load_handler, member_path


def _connect(ticket: str, cid: str | None = None) -> int:
    event = json.loads((ROOT / "tests" / "events" / "connect.json").read_text())
    event["requestContext"]["connectionId"] = cid or f"{uuid.uuid4().hex[:15]}="
    event["queryStringParameters"] = {"token": ticket}
    event["multiValueQueryStringParameters"] = {"token": [ticket]}
    return int(load_handler("connect").handler(event, LambdaContext())["statusCode"])


def _first_frame(cid: str) -> dict[str, Any]:
    """A ``sync`` from the connection: its first frame, which admits it (collab.domain.admission)."""
    event = json.loads((ROOT / "tests" / "events" / "message.json").read_text())
    event["requestContext"]["connectionId"] = cid
    event["body"] = json.dumps({"action": "sync", "since": None})
    out: dict[str, Any] = json.loads(load_handler("message").handler(event, LambdaContext())["body"])
    return out


# -- tickets -----------------------------------------------------------------------------------
def test_a_ticket_comes_with_its_url_and_opens_one_connection(api, settings, wid):
    from collab.auth.tokens import verify_ticket

    before = time.time()
    out = api.ok("POST", "/ws-tickets", "bob", {"workspace_id": wid})
    assert out["url"] == f"{settings.websocket_url}?token={out['ticket']}"
    ticket = verify_ticket(out["ticket"], settings)
    assert (ticket.user_id, ticket.workspace_id) == ("bob", wid)
    expires = datetime.fromisoformat(out["expires_at"].replace("Z", "+00:00")).timestamp()
    assert before + 290 <= expires <= time.time() + 301
    assert _connect(out["ticket"]) == 200
    assert _connect(out["ticket"]) == 401  # single use


def test_a_ticket_held_by_a_removed_member_stops_working(world, settings):
    """The refused connection is closed at API Gateway (the Management API: moto, ``world``)."""
    api = Api(settings)
    wid = api.workspace("alice")
    api.add("alice", wid, "bob")
    held = api.ok("POST", "/ws-tickets", "bob", {"workspace_id": wid})["ticket"]
    assert api.call("DELETE", member_path(wid, "bob"), "alice").status == 204
    assert _connect(held, "held000000001=") == 200  # $connect uses Redis alone...
    out = _first_frame("held000000001=")  # ...the first frame checks the membership
    assert out["type"] == "error" and out["data"]["code"] == "forbidden"
    assert "held000000001=" in world.sink.deleted
    assert api.call("POST", "/ws-tickets", "bob", {"workspace_id": wid}).status == 403


def test_tickets_without_a_websocket_url_are_a_configuration_error(settings, clean, clock):
    from collab import runtime

    rt = runtime.Runtime(settings.model_copy(update={"websocket_url": None}), clock=clock)
    runtime.install(rt)
    try:
        api = Api(settings)
        wid = api.workspace("alice")
        answer = api.call("POST", "/ws-tickets", "alice", {"workspace_id": wid})
        assert answer.status == 500 and answer.error == {
            "code": "internal",
            "message": answer.error["message"],
        }
        assert "WEBSOCKET_URL" in answer.error["message"]
    finally:
        runtime.install(None)
        rt.db.close()


# -- activity and presence ---------------------------------------------------------------------
def test_activity_pages_newest_first_with_before(api, wid):
    for i in range(4):
        api.ok("POST", f"/workspaces/{wid}/tasks", "alice", {"title": f"t{i}"})  # seq 2..5 (1: bob added)
    pages, before = [], None
    for _ in range(20):  # bounded: a cursor that never ends fails, not hangs
        page = api.ok(
            "GET",
            f"/workspaces/{wid}/activity",
            "bob",
            query={"limit": 2, **({"before": before} if before else {})},
        )
        pages.append([e["seq"] for e in page["items"]])
        before = page["next_cursor"]
        if before is None:
            break
    else:
        pytest.fail("the pages never end")
    assert pages == [[5, 4], [3, 2], [1]]
    assert api.ok("GET", f"/workspaces/{wid}/activity", "bob", query={"before": 1})["items"] == []
    for query in ({"before": 0}, {"limit": 0}, {"limit": 201}, {"before": "x"}):
        assert api.call("GET", f"/workspaces/{wid}/activity", "bob", query=query).status == 422, query


def test_activity_pages_that_end_exactly_at_a_page_and_the_default_page_of_50(api, rt, wid):
    """Pages of 3 over seqs 1-6 end after the second (no empty third page); the next page starts
    right after the last item shown; without a limit a page holds 50."""
    from collab.domain import tasks
    from collab.protocol.client_frames import TaskDraft

    for i in range(5):
        api.ok("POST", f"/workspaces/{wid}/tasks", "alice", {"title": f"t{i}"})  # seq 2..6
    path = f"/workspaces/{wid}/activity"
    first = api.ok("GET", path, "bob", query={"limit": 3})
    assert [e["seq"] for e in first["items"]] == [6, 5, 4] and first["next_cursor"] == 4
    second = api.ok("GET", path, "bob", query={"limit": 3, "before": 4})
    assert [e["seq"] for e in second["items"]] == [3, 2, 1] and second["next_cursor"] is None
    for i in range(50):  # seq 7..56
        tasks.create(rt.db, "alice", TaskDraft(title=f"more {i}"), workspace_id=wid)
    page = api.ok("GET", path, "bob")
    assert [e["seq"] for e in page["items"]] == list(range(56, 6, -1)) and page["next_cursor"] == 7


def test_presence_lists_online_members(api, rt, wid):
    from collab.adapters.redis.store import ConnInfo
    from collab.domain import presence

    info = ConnInfo("conn-bob=", wid, "bob", "Bob", rt.clock.now_ms())
    rt.store.register(info, rt.clock.now_ms())
    presence.join(rt, info)
    page = api.ok("GET", f"/workspaces/{wid}/presence", "alice")
    assert page["next_cursor"] is None
    assert [
        (p["user"]["id"], p["user"]["display_name"], p["status"], p["viewing"]) for p in page["items"]
    ] == [("bob", "Bob", "active", None)]
    assert api.call("GET", f"/workspaces/{wid}/presence", "dave").status == 403


# -- notifications -----------------------------------------------------------------------------
def test_notifications_list_filter_page_and_read(api, wid):
    for i in range(3):
        api.ok("POST", f"/workspaces/{wid}/tasks", "alice", {"title": f"t{i}", "assigned_to": "bob"})
    everything = api.ok("GET", "/notifications", "bob")["items"]
    assert [n["type"] for n in everything] == ["task.assigned"] * 3 + ["member.added"]
    paged, cursor = [], None
    for _ in range(20):  # bounded: a cursor that never ends fails, not hangs
        page = api.ok(
            "GET", "/notifications", "bob", query={"limit": 3, **({"cursor": cursor} if cursor else {})}
        )
        paged += [n["id"] for n in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    else:
        pytest.fail("the pages never end")
    assert paged == [n["id"] for n in everything]

    api.ok("POST", f"/workspaces/{wid}/tasks", "bob", {"title": "for alice", "assigned_to": "alice"})
    alices = api.ok("GET", "/notifications", "alice")["items"][0]["id"]
    ids = [everything[0]["id"], everything[1]["id"], alices, str(uuid.uuid4())]
    assert api.ok("POST", "/notifications/read", "bob", {"ids": ids}) == {"read": sorted(ids[:2])}
    unread = api.ok("GET", "/notifications", "bob", query={"unread": True})["items"]
    assert [n["id"] for n in unread] == [n["id"] for n in everything[2:]]
    assert api.ok("GET", "/notifications", "alice", query={"unread": "true"})["items"][0]["read_at"] is None
    for body in ({"ids": []}, {"ids": [str(uuid.uuid4())] * 101}, {"ids": ["nope"]}, {}):
        assert api.call("POST", "/notifications/read", "bob", body).status == 422, body
    assert api.call("GET", "/notifications", "bob", query={"cursor": "nope"}).status == 422


# -- malformed, unauthenticated, oversized -------------------------------------------------------
def _claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    c = {"sub": "alice", "iss": "collab", "aud": "collab-api", "iat": now, "exp": now + 600}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def test_every_authentication_failure_is_401_with_the_error_body(api, settings, capsys):
    from collab.auth.tokens import issue_ticket

    key = settings.jwt_key
    now = int(time.time())
    ws_ticket = issue_ticket(settings, "alice", str(uuid.uuid4()))[0]
    headers = {
        "missing": None,
        "not bearer": "Basic YWxpY2U6c2VjcmV0",
        "empty bearer": "Bearer ",
        "garbage": "Bearer not.a.jwt",
        "expired": "Bearer " + jwt.encode(_claims(iat=now - 900, exp=now - 300), key),
        "wrong audience": "Bearer " + jwt.encode(_claims(aud="someone-else"), key),
        "wrong issuer": "Bearer " + jwt.encode(_claims(iss="evil"), key),
        "wrong key": "Bearer " + jwt.encode(_claims(), "k" * 40),
        "no sub": "Bearer " + jwt.encode(_claims(sub=None), key),
        "a websocket ticket": "Bearer " + ws_ticket,
    }
    for case, value in headers.items():
        event = http_event("GET", "/workspaces", headers={"authorization": value} if value else None)
        answer = invoke(event)
        assert answer.status == 401, case
        assert set(answer.body) == {"error"} and answer.error["code"] == "unauthorized", case
        assert answer.headers["www-authenticate"].startswith("Bearer"), case
    logged = capsys.readouterr()
    for value in headers.values():
        if value and len(value) > 30:
            assert value.split(" ", 1)[1] not in logged.out + logged.err


def test_malformed_bodies_are_400_415_413_and_never_500(api):
    token = api.token("alice")
    cases = [
        ("not JSON", http_event("POST", "/workspaces", token=token, raw_body='{"name": '), 400),
        (
            "bad base64",
            {**http_event("POST", "/workspaces", token=token, raw_body="!!"), "isBase64Encoded": True},
            400,
        ),
        (
            "not UTF-8",
            {
                **http_event("POST", "/workspaces", token=token, raw_body="x"),
                "body": base64.b64encode(b'{"name": "\xff\xfe"}').decode(),
                "isBase64Encoded": True,
            },
            400,
        ),
        (
            "text/plain",
            http_event(
                "POST", "/workspaces", token=token, raw_body="name=x", headers={"content-type": "text/plain"}
            ),
            415,
        ),
        (
            "a form",
            http_event(
                "POST",
                "/workspaces",
                token=token,
                raw_body="name=x",
                headers={"content-type": "application/x-www-form-urlencoded"},
            ),
            415,
        ),
        (
            "multipart without boundary",
            http_event(
                "POST",
                "/workspaces",
                token=token,
                raw_body="--x",
                headers={"content-type": "multipart/form-data"},
            ),
            415,
        ),
        ("over 64 KB", http_event("POST", "/workspaces", token=token, body={"name": "x" * (64 * 1024)}), 413),
        ("over 64 KB, no token", http_event("POST", "/workspaces", body={"name": "x" * (64 * 1024)}), 413),
        ("a JSON array", http_event("POST", "/workspaces", token=token, body=[]), 422),
        ("JSON null", http_event("POST", "/workspaces", token=token, raw_body="null"), 422),
        ("no body", http_event("POST", "/workspaces", token=token), 422),
        ("unknown route", http_event("GET", "/nowhere", token=token), 404),
        ("unknown method", http_event("PUT", "/workspaces", token=token, body={"name": "x"}), 405),
        ("bad uuid in the path", http_event("GET", "/workspaces/42", token=token), 422),
        (
            "NUL in a user id",
            http_event("DELETE", f"/workspaces/{uuid.uuid4()}/members/a%00b", token=token),
            422,
        ),
        (
            "NUL in an email",
            http_event(
                "POST", f"/workspaces/{uuid.uuid4()}/members", token=token, body={"email": "a\u0000@b"}
            ),
            422,
        ),
        (
            "NUL in a cursor",
            http_event("GET", "/notifications", token=token, query={"cursor": "a\u0000"}),
            422,
        ),
        ("NUL in a task cursor", http_event("GET", "/tasks", token=token, query={"cursor": "a\u0000"}), 422),
    ]
    for case, event, status in cases:
        answer = invoke(event)
        assert answer.status == status, (case, answer.body)
        assert set(answer.body) == {"error"} and set(answer.error) >= {"code", "message"}, case
        expected_code = {
            400: "validation_error",
            404: "not_found",
            405: "method_not_allowed",
            413: "payload_too_large",
            415: "validation_error",
        }
        assert answer.error["code"] == expected_code.get(status, "validation_error"), case


def test_a_known_path_with_another_method_is_405_with_allow_and_an_unknown_path_404(api):
    token = api.token("alice")
    wid = str(uuid.uuid4())
    for method, path, allow in [
        ("TRACE", "/workspaces", "GET, POST"),
        ("PUT", f"/workspaces/{wid}", "DELETE, GET, PATCH"),
        ("GET", "/ws-tickets", "POST"),
        ("DELETE", "/notifications/read", "POST"),
        ("POST", f"/workspaces/{wid}/members/someone", "DELETE, PATCH"),
        ("TRACE", "/api/tasks", "GET, POST"),  # the local gateway's prefix
    ]:
        answer = invoke(http_event(method, path, token=token))
        assert answer.status == 405, (method, path, answer.body)
        assert answer.headers["allow"] == allow, (method, path)
        assert answer.error["code"] == "method_not_allowed"
    for method, path in [("GET", "/nowhere"), ("TRACE", "/workspaces/x/y/z"), ("GET", "/")]:
        answer = invoke(http_event(method, path, token=token))
        assert answer.status == 404 and "allow" not in answer.headers, (method, path)
        assert answer.error["code"] == "not_found"


def test_a_failed_publish_does_not_undo_or_fail_a_committed_change(api, wid, monkeypatch):
    from collab.domain import events

    def down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("redis is down")

    monkeypatch.setattr(events, "publish", down)
    answer = api.call("POST", f"/workspaces/{wid}/tasks", "alice", {"title": "Still here"})
    assert answer.status == 201
    monkeypatch.undo()
    log = api.ok("GET", f"/workspaces/{wid}/activity", "alice")["items"]
    assert log[0]["type"] == "task.created" and log[0]["data"]["task"]["id"] == answer.body["id"]


def test_base64_bodies_stage_and_local_prefixes_are_understood(api):
    token = api.token("alice")
    encoded = http_event("POST", "/workspaces", token=token, body={"name": "B64"}, base64_body=True)
    assert invoke(encoded).status == 201
    staged = http_event("GET", "/prod/workspaces", token=token)
    staged["requestContext"]["stage"] = "prod"
    assert invoke(staged).status == 200
    assert (
        invoke(http_event("GET", "/api/workspaces", token=token)).status == 200
    )  # the local gateway's prefix


def test_the_event_is_not_modified(api):
    event = http_event("POST", "/workspaces", token=api.token("alice"), body={"name": "x"}, base64_body=True)
    kept = copy.deepcopy(event)
    invoke(event)
    assert event == kept


def test_concurrent_requests_never_see_each_others_identity(api):
    """The local gateway calls the handler from several threads at once."""
    from concurrent.futures import ThreadPoolExecutor

    mine = {user: api.workspace(user, f"{user}'s") for user in ("alice", "bob", "carol")}

    def ask(user: str) -> tuple[str, list[str]]:
        return user, [w["id"] for w in api.ok("GET", "/workspaces", user)["items"]]

    with ThreadPoolExecutor(6) as pool:
        for user, seen in pool.map(ask, ["alice", "bob", "carol"] * 8):
            assert seen == [mine[user]], user
