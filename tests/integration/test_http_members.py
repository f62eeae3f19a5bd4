"""Workspaces and members over HTTP: the role matrix route by route, the member rules, the member
events and notifications, the 50-member cap, and users created from their token."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from test_http_helpers import Api, installed_runtime, member_path

ROLES = {"owner": "alice", "admin": "bob", "member": "carol", "outsider": "dave"}


@dataclass
class Board:
    wid: str
    tid: str


def make_board(rt: Any) -> Board:
    """alice owner, bob admin, carol and frank members; dave and erin signed in, not members.

    Set up in SQL (one transaction) to keep the matrix fast; the routes under test do the rest.
    """
    roles = {
        "alice": "owner",
        "bob": "admin",
        "carol": "member",
        "frank": "member",
        "dave": None,
        "erin": None,
    }

    def tx(cur: Any) -> Board:
        for uid in roles:
            cur.execute(
                "INSERT INTO users (id, email, display_name) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                (uid, f"{uid}@example.test", uid.title()),
            )
        wid = str(
            cur.execute(
                "INSERT INTO workspaces (name, created_by) VALUES ('Board', 'alice') RETURNING id"
            ).fetchone()["id"]
        )
        for uid, role in roles.items():
            if role:
                cur.execute(
                    "INSERT INTO workspace_members (workspace_id, user_id, role) VALUES (%s, %s, %s)",
                    (wid, uid, role),
                )
        tid = cur.execute(
            "INSERT INTO tasks (workspace_id, title, created_by, updated_by) VALUES (%s, 'Plan', 'alice', 'alice')"
            " RETURNING id",
            (wid,),
        ).fetchone()["id"]
        return Board(wid, str(tid))

    return rt.db.run(tx)


@pytest.fixture
def board(rt: Any) -> Board:
    return make_board(rt)


@pytest.fixture
def boards(settings: Any) -> Any:
    """Fresh boards on a runtime that skips ``clean``: every board is a new workspace."""
    with installed_runtime(settings) as rt:
        yield lambda: make_board(rt)


# route, method, path, body, expected status for owner / admin / member / outsider
MATRIX: list[tuple[str, str, str, Any, tuple[int, int, int, int]]] = [
    ("ticket", "POST", "/ws-tickets", {"workspace_id": "{wid}"}, (200, 200, 200, 403)),
    ("get workspace", "GET", "/workspaces/{wid}", None, (200, 200, 200, 403)),
    ("rename workspace", "PATCH", "/workspaces/{wid}", {"name": "Renamed"}, (200, 200, 403, 403)),
    ("delete workspace", "DELETE", "/workspaces/{wid}", None, (204, 403, 403, 403)),
    ("list members", "GET", "/workspaces/{wid}/members", None, (200, 200, 200, 403)),
    ("add member", "POST", "/workspaces/{wid}/members", {"user_id": "erin"}, (201, 201, 403, 403)),
    ("change role", "PATCH", "/workspaces/{wid}/members/frank", {"role": "admin"}, (200, 200, 403, 403)),
    ("remove member", "DELETE", "/workspaces/{wid}/members/frank", None, (204, 204, 403, 403)),
    ("list tasks", "GET", "/workspaces/{wid}/tasks", None, (200, 200, 200, 403)),
    ("create task", "POST", "/workspaces/{wid}/tasks", {"title": "New"}, (201, 201, 201, 403)),
    ("get task", "GET", "/tasks/{tid}", None, (200, 200, 200, 403)),
    ("update task", "PATCH", "/tasks/{tid}", {"status": "done"}, (200, 200, 200, 403)),
    ("delete task", "DELETE", "/tasks/{tid}", None, (200, 200, 200, 403)),
    ("activity", "GET", "/workspaces/{wid}/activity", None, (200, 200, 200, 403)),
    ("presence", "GET", "/workspaces/{wid}/presence", None, (200, 200, 200, 403)),
]
CODES = {200: None, 201: None, 204: None, 403: "forbidden", 404: "not_found", 409: "conflict"}


def _fill(value: Any, wid: str, tid: str) -> Any:
    if isinstance(value, str):
        return value.format(wid=wid, tid=tid)
    if isinstance(value, dict):
        return {k: _fill(v, wid, tid) for k, v in value.items()}
    return value


@pytest.mark.parametrize(("route", "method", "path", "body", "expected"), MATRIX, ids=[m[0] for m in MATRIX])
def test_role_matrix(boards, settings, route, method, path, body, expected):
    """Each role acts on a board of its own, so a refusal is never a side effect of another call."""
    api = Api(settings)
    for role, want in zip(ROLES, expected, strict=True):
        board = boards()
        args = {} if body is None else {"body": _fill(body, board.wid, board.tid)}
        answer = api.call(method, _fill(path, board.wid, board.tid), ROLES[role], **args)
        assert answer.status == want, (route, role, answer.body)
        if CODES[want]:
            assert answer.error["code"] == CODES[want], (route, role)


def test_unknown_workspace_or_task_is_404_on_every_route(boards, settings):
    api = Api(settings)
    boards()  # alice exists
    for route, method, path, body, _ in MATRIX:
        ghost = str(uuid.uuid4())
        args = {} if body is None else {"body": _fill(body, ghost, ghost)}
        answer = api.call(method, _fill(path, ghost, ghost), "alice", **args)
        assert answer.status == 404, (route, answer.body)
        assert answer.error["code"] == "not_found"


# -- workspaces --------------------------------------------------------------------------------
def test_create_makes_the_creator_owner_and_lists_it_for_them_only(api):
    ws = api.ok("POST", "/workspaces", "alice", {"name": "Launch"})
    assert (ws["name"], ws["role"], ws["created_by"], ws["member_count"], ws["last_seq"]) == (
        "Launch",
        "owner",
        "alice",
        1,
        0,
    )
    assert [w["id"] for w in api.ok("GET", "/workspaces", "alice")["items"]] == [ws["id"]]
    assert api.ok("GET", "/workspaces", "dave") == {"items": [], "next_cursor": None}
    assert (
        api.ok("GET", f"/workspaces/{ws['id']}/activity", "alice")["items"] == []
    )  # no event for the creator


def test_workspace_list_pages_in_creation_order(api):
    made = [api.workspace("alice", f"W{i}") for i in range(5)]
    seen, cursor = [], None
    for _ in range(20):  # bounded: a cursor that never ends fails, not hangs
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.ok("GET", "/workspaces", "alice", query=query)
        seen += [w["id"] for w in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    else:
        pytest.fail("the pages never end")
    assert seen == made


def test_workspace_names_are_validated(api):
    for name in ["", "   ", "x" * 101, "tab\x01", None, 42]:
        answer = api.call("POST", "/workspaces", "alice", {"name": name})
        assert answer.status == 422 and answer.error["field"] == "body.name", name


def test_rename_and_delete(api, board, rt):
    assert api.ok("PATCH", f"/workspaces/{board.wid}", "bob", {"name": "Renamed"})["name"] == "Renamed"
    assert api.call("DELETE", f"/workspaces/{board.wid}", "alice").status == 204
    assert api.call("GET", f"/workspaces/{board.wid}", "alice").status == 404
    assert api.call("GET", f"/tasks/{board.tid}", "alice").status == 404
    assert api.ok("GET", "/workspaces", "carol")["items"] == []


# -- member rules ------------------------------------------------------------------------------
def test_an_admin_cannot_touch_the_owner_or_another_admin(api, board):
    api.add("alice", board.wid, "gina", "admin")
    for target in ("alice", "gina"):
        path = member_path(board.wid, target)
        assert api.call("PATCH", path, "bob", {"role": "member"}).error["code"] == "forbidden"
        assert api.call("DELETE", path, "bob").status == 403
    members = {
        m["user_id"]: m["role"] for m in api.ok("GET", f"/workspaces/{board.wid}/members", "bob")["items"]
    }
    assert (members["alice"], members["gina"]) == ("owner", "admin")


def test_a_member_changes_no_role_and_an_unknown_member_is_not_found(api, board):
    """A plain member may not even set a member's role to the one it has; admins and owners get a
    404 that says which thing is missing for someone who is not a member."""
    same = api.call("PATCH", member_path(board.wid, "frank"), "carol", {"role": "member"})
    assert same.status == 403 and same.error["code"] == "forbidden"
    for actor in ("alice", "bob"):
        for answer in (
            api.call("PATCH", member_path(board.wid, "dave"), actor, {"role": "member"}),
            api.call("DELETE", member_path(board.wid, "dave"), actor),
        ):
            assert answer.status == 404 and answer.error["message"] == "member not found", answer.body


def test_nobody_grants_a_role_above_their_own(api, board):
    assert api.call("PATCH", member_path(board.wid, "frank"), "bob", {"role": "owner"}).status == 403
    assert (
        api.call(
            "POST", f"/workspaces/{board.wid}/members", "bob", {"user_id": "erin", "role": "owner"}
        ).status
        == 403
    )
    added = api.call("POST", f"/workspaces/{board.wid}/members", "bob", {"user_id": "erin", "role": "admin"})
    assert added.status == 201 and added.body["role"] == "admin"


def test_the_last_owner_can_neither_leave_nor_be_demoted(api, board):
    me = member_path(board.wid, "alice")
    for answer in (api.call("DELETE", me, "alice"), api.call("PATCH", me, "alice", {"role": "admin"})):
        assert answer.status == 409 and answer.error["code"] == "conflict"
        assert answer.error["message"] == (
            "the last owner cannot leave or be demoted; make another member owner first"
        )
    api.ok("PATCH", member_path(board.wid, "bob"), "alice", {"role": "owner"})
    assert api.ok("PATCH", me, "alice", {"role": "admin"})["role"] == "admin"
    assert api.call("DELETE", member_path(board.wid, "bob"), "bob").status == 409  # bob is now the last owner
    assert api.call("DELETE", me, "alice").status == 204


def test_any_member_may_leave(api, board, rt):
    assert api.call("DELETE", member_path(board.wid, "carol"), "carol").status == 204
    assert api.call("GET", f"/workspaces/{board.wid}", "carol").status == 403
    event = api.ok("GET", f"/workspaces/{board.wid}/activity", "alice")["items"][0]
    assert (event["type"], event["user_id"], event["data"]["member"]["user_id"]) == (
        "member.removed",
        "carol",
        "carol",
    )
    assert api.ok("GET", "/notifications", "carol")["items"] == []  # never notified of one's own action


def test_adding_by_email_unknown_users_and_duplicates(api, board):
    by_email = api.call("POST", f"/workspaces/{board.wid}/members", "alice", {"email": "ERIN@example.test"})
    assert by_email.status == 201 and by_email.body["user_id"] == "erin"
    again = api.call("POST", f"/workspaces/{board.wid}/members", "alice", {"user_id": "erin"})
    assert again.status == 409 and again.error["code"] == "conflict"
    assert again.error["message"] == "already a member of this workspace"
    for body in ({"user_id": "nobody"}, {"email": "nobody@example.test"}):
        unknown = api.call("POST", f"/workspaces/{board.wid}/members", "alice", body)
        assert unknown.status == 404
        assert unknown.error["message"] == "user not found (users exist once they have signed in)"
    for body in (
        {},
        {"user_id": "erin", "email": "erin@example.test"},
        {"email": "not-an-email"},
        {"user_id": "x", "role": "king"},
    ):
        assert api.call("POST", f"/workspaces/{board.wid}/members", "alice", body).status == 422, body


def test_adding_needs_exactly_one_of_user_id_and_email(rt, board):
    """The domain's own check, behind the HTTP model's (which answers 422 first)."""
    from collab.domain import members
    from collab.errors import ValidationError

    for who in ({}, {"user_id": "erin", "email": "erin@example.test"}):
        with pytest.raises(ValidationError) as refused:
            members.add_member(rt.db, "alice", board.wid, **who)
        assert refused.value.message == "exactly one of user_id and email is required"
        assert refused.value.extra == {"field": "user_id"}


def test_changing_or_removing_a_non_member_is_404(api, board):
    assert api.call("PATCH", member_path(board.wid, "erin"), "alice", {"role": "admin"}).status == 404
    assert api.call("DELETE", member_path(board.wid, "erin"), "alice").status == 404


def test_user_ids_with_reserved_characters_work_in_paths(api, board):
    api.add("alice", board.wid, "auth0|42/x")
    path = member_path(board.wid, "auth0|42/x")
    assert api.ok("PATCH", path, "alice", {"role": "admin"})["user_id"] == "auth0|42/x"
    assert api.call("DELETE", path, "alice").status == 204


def test_at_most_50_members(api, board, rt):
    def fill(cur: Any) -> None:  # 46 more members: 50 with alice, bob, carol and frank
        for i in range(46):
            cur.execute("INSERT INTO users (id) VALUES (%s)", (f"filler{i}",))
            cur.execute(
                "INSERT INTO workspace_members (workspace_id, user_id, role) VALUES (%s, %s, 'member')",
                (board.wid, f"filler{i}"),
            )

    rt.db.run(fill)
    full = api.call("POST", f"/workspaces/{board.wid}/members", "alice", {"user_id": "erin"})
    assert full.status == 409 and "50" in full.error["message"]
    assert api.ok("GET", f"/workspaces/{board.wid}", "alice")["member_count"] == 50
    assert api.call("DELETE", member_path(board.wid, "filler0"), "alice").status == 204
    assert api.call("POST", f"/workspaces/{board.wid}/members", "alice", {"user_id": "erin"}).status == 201


def test_the_member_cap_is_a_setting(api, board, rt, monkeypatch):
    """LIMIT_MEMBERS_PER_WORKSPACE=60: a workspace of 50 takes ten more, then refuses the 61st."""
    from collab.config import Limits

    monkeypatch.setattr(
        rt, "settings", rt.settings.model_copy(update={"limits": Limits(members_per_workspace=60)})
    )

    def fill(cur: Any) -> None:  # 56 more members: 60 with alice, bob, carol and frank
        for i in range(56):
            cur.execute("INSERT INTO users (id) VALUES (%s)", (f"filler{i}",))
            cur.execute(
                "INSERT INTO workspace_members (workspace_id, user_id, role) VALUES (%s, %s, 'member')",
                (board.wid, f"filler{i}"),
            )

    rt.db.run(fill)
    full = api.call("POST", f"/workspaces/{board.wid}/members", "alice", {"user_id": "erin"})
    assert full.status == 409 and "60 members" in full.error["message"]
    assert api.ok("GET", f"/workspaces/{board.wid}", "alice")["member_count"] == 60


# -- member events and notifications -----------------------------------------------------------
def _history(rt: Any, wid: str) -> list[str]:
    import json

    return [json.loads(raw)["type"] for _, raw in rt.store.history(wid, 0)]


def test_member_changes_are_workspace_events_with_seq_and_notify_the_member(api, rt):
    wid = api.workspace("alice")
    api.ok("GET", "/workspaces", "bob")
    added = api.ok("POST", f"/workspaces/{wid}/members", "alice", {"user_id": "bob"})
    api.ok("PATCH", member_path(wid, "bob"), "alice", {"role": "admin"})
    api.ok("PATCH", member_path(wid, "bob"), "alice", {"role": "admin"})  # no change: no event
    assert api.call("DELETE", member_path(wid, "bob"), "alice").status == 204

    log = api.ok("GET", f"/workspaces/{wid}/activity", "alice")["items"]
    assert [(e["seq"], e["type"], e["user_id"]) for e in log] == [
        (3, "member.removed", "alice"),
        (2, "member.role_changed", "alice"),
        (1, "member.added", "alice"),
    ]
    assert log[2]["data"] == {"member": added}
    assert log[1]["data"]["member"]["role"] == "admin"
    assert _history(rt, wid) == ["member.added", "member.role_changed", "member.removed"]
    assert api.ok("GET", f"/workspaces/{wid}", "alice")["last_seq"] == 3

    notes = api.ok("GET", "/notifications", "bob")["items"]
    assert [n["type"] for n in notes] == ["member.removed", "member.role_changed", "member.added"]
    assert {n["actor_id"] for n in notes} == {"alice"} and {n["workspace_id"] for n in notes} == {wid}
    assert notes[1]["payload"]["previous_role"] == "member" and notes[1]["payload"]["role"] == "admin"
    assert notes[2]["payload"]["role"] == "member"
    name = api.ok("GET", f"/workspaces/{wid}", "alice")["name"]
    assert [(n["payload"]["workspace_name"], n["payload"]["seq"]) for n in notes] == [
        (name, 3),
        (name, 2),
        (name, 1),
    ]
    assert api.ok("GET", "/notifications", "alice")["items"] == []


# -- users -------------------------------------------------------------------------------------
def _user(rt: Any, uid: str) -> dict[str, Any] | None:
    return rt.db.run(lambda cur: cur.execute("SELECT * FROM users WHERE id = %s", (uid,)).fetchone())


def test_users_are_created_and_refreshed_from_their_token(api, rt):
    from test_http_helpers import http_event, invoke

    from collab.auth.tokens import issue_access_token

    def as_(uid: str, **claims: Any) -> int:
        return invoke(
            http_event("GET", "/workspaces", token=issue_access_token(api.settings, uid, **claims))
        ).status

    assert as_("zoe", email="zoe@example.test", name="Zoe") == 200
    assert (_user(rt, "zoe")["email"], _user(rt, "zoe")["display_name"]) == ("zoe@example.test", "Zoe")
    assert as_("zoe", email="zoe@example.test", name="Zoë Z") == 200
    assert _user(rt, "zoe")["display_name"] == "Zoë Z"
    assert as_("zoe") == 200  # a token without the claims keeps what is stored
    assert (_user(rt, "zoe")["email"], _user(rt, "zoe")["display_name"]) == ("zoe@example.test", "Zoë Z")
    assert as_("zoe-2", email="ZOE@example.test") == 200  # the identity provider moved the email
    assert _user(rt, "zoe")["email"] is None and _user(rt, "zoe-2")["email"] == "ZOE@example.test"
    assert _user(rt, "zoe-2")["display_name"] == "ZOE@example.test"


def test_two_owners_demoting_each_other_at_once_leave_one_owner(api, board):
    """Membership changes lock the workspace row, so the second demotion sees the first."""
    from concurrent.futures import ThreadPoolExecutor

    api.ok("PATCH", member_path(board.wid, "bob"), "alice", {"role": "owner"})
    moves = [("alice", "bob"), ("bob", "alice")]
    with ThreadPoolExecutor(2) as pool:
        answers = list(
            pool.map(
                lambda m: api.call("PATCH", member_path(board.wid, m[1]), m[0], {"role": "member"}), moves
            )
        )
    assert sorted(a.status for a in answers) in (
        [200, 403],
        [200, 409],
    )  # the loser is no owner any more, or last
    roles = {
        m["user_id"]: m["role"] for m in api.ok("GET", f"/workspaces/{board.wid}/members", "carol")["items"]
    }
    assert sorted(r for u, r in roles.items() if u in ("alice", "bob")) == ["member", "owner"]
