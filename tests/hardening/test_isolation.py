"""Isolation between workspaces: a hypothesis state machine of random operations across three
workspaces with overlapping members and membership changes.

Operations: connect (members, and outsiders whose first frame must be refused), disconnect, task create / update
(reassign included) / delete, presence updates, heartbeats, sync, members added and removed over
the HTTP API (functions/api/handler.py), members removed directly (the row deleted, then
``presence.close_user`` as the HTTP API does), and frames sent on connections already closed.

After every operation, for every post the Management API received during it:
  * it went to a connection that is open, and that belongs to the machine;
  * a workspace event (task.*, member.*, presence.*) went only to connections of that workspace,
    whose user was a member of it before and after the operation (so never to a removed member,
    not even the removal's own event), and never a task event to the connection that made it;
  * ``notification.created`` went only to connections of its recipient, and a notification about a
    workspace only to a user who is (still) a member of it, or is being told they were removed;
  * nothing else is ever posted (replies travel as route responses).
And positively: each task event reached every other synced connection of its workspace. ``sync``
replies carry only their workspace's events, and presence entries of its members only.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
from hardening_support import load_integration_module
from hypothesis import HealthCheck, Phase
from hypothesis import settings as run_settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

EXAMPLES = int(os.environ.get("ISOLATION_EXAMPLES", "20"))
STEPS = 30  # 20 x 30 = 600 operations per run by default
# Shrinking a failing run replays it many times over real services (minutes): on demand only.
PHASES = [Phase.explicit, Phase.generate, *([Phase.shrink] if os.environ.get("HARDENING_SHRINK") else [])]


class Conn:
    def __init__(self, harness_conn: Any, user: str, wid: str) -> None:
        self.c, self.user, self.wid, self.open = harness_conn, user, wid, True

    @property
    def cid(self) -> str:
        return str(self.c.cid)


class Isolation(RuleBasedStateMachine):
    world: Any = None  # set by the test
    api: Any = None

    def __init__(self) -> None:
        super().__init__()
        self.prefix = uuid.uuid4().hex[:6]
        self.users = [f"{self.prefix}-u{i}" for i in range(6)]
        self.wids: list[str] = []  # in creation order: draws must not depend on random ids
        self.members: dict[str, set[str]] = {}
        self.owners: dict[str, str] = {}
        self.conns: dict[str, Conn] = {}
        self.tasks: dict[str, list[str]] = {}
        self.seen = len(self.world.sink.posts)
        self.before: dict[str, set[str]] = {}
        self.actor_cid: str | None = None
        self.task_events: list[tuple[str, int, str]] = []  # (wid, seq, actor cid) this step
        self.step_checks = 0

    # -- setup -------------------------------------------------------------------------------
    @initialize(data=st.data())
    def three_workspaces(self, data: st.DataObject) -> None:
        for u in self.users:
            self.api.ok("GET", "/workspaces", u)  # signed in once: the user exists
        for i in range(3):
            owner = self.users[i]
            wid = self.api.workspace(owner, f"W{i}")
            self.wids.append(wid)
            self.owners[wid], self.members[wid], self.tasks[wid] = owner, {owner}, []
            others = data.draw(st.sets(st.sampled_from([u for u in self.users if u != owner]), max_size=4))
            for u in sorted(others):
                self.api.add(owner, wid, u)
                self.members[wid].add(u)
        self._begin()

    def _begin(self) -> None:
        """Start of an operation: remember who is a member of what, and where posts stand. (The
        clock stands still: no connection goes stale, so none is swept behind the model's back.)"""
        self.seen = len(self.world.sink.posts)
        self.before = {w: set(m) for w, m in self.members.items()}
        self.actor_cid = None
        self.task_events = []

    def open_conns(self, wid: str | None = None) -> list[Conn]:
        return [c for c in self.conns.values() if c.open and (wid is None or c.wid == wid)]

    # -- connections -------------------------------------------------------------------------
    @rule(data=st.data())
    def connect(self, data: st.DataObject) -> None:
        wid = data.draw(st.sampled_from(self.wids))
        user = data.draw(st.sampled_from(self.users))
        if user in self.members[wid]:
            c = Conn(self.world.connect(user, wid), user, wid)  # connect, then the first sync
            self.conns[c.cid] = c
        else:  # $connect uses Redis alone (v1.3): the first frame, whatever it is, is refused
            cid = f"{uuid.uuid4().hex[:15]}="
            out = self.world.connect_raw(self.world.ticket(user, wid), cid)
            assert out["statusCode"] == 200, out
            first = data.draw(
                st.sampled_from(
                    [
                        {"action": "sync", "since": None},
                        {"action": "task.create", "request_id": str(uuid.uuid4()), "task": {"title": "x"}},
                        {"action": "presence.update", "status": "active", "viewing": None},
                    ]
                )
            )
            reply = self.world.attach(cid, user, wid).send(first)
            assert reply is not None and reply["type"] == "error", reply
            assert reply["data"]["code"] == "forbidden", reply
            assert self.world.rt.store.connection(cid) is None

    @precondition(lambda self: self.open_conns())
    @rule(data=st.data())
    def disconnect(self, data: st.DataObject) -> None:
        c = data.draw(st.sampled_from(self.open_conns()))
        c.c.disconnect()
        c.open = False

    @precondition(lambda self: any(not c.open for c in self.conns.values()))
    @rule(data=st.data())
    def frame_on_a_closed_connection(self, data: st.DataObject) -> None:
        c = data.draw(st.sampled_from([c for c in self.conns.values() if not c.open]))
        reply = c.c.send({"action": "sync", "since": 0})
        assert reply["type"] == "error" and reply["data"]["code"] == "unauthorized", reply

    # -- tasks -------------------------------------------------------------------------------
    def _mutate(self, c: Conn, frame: dict[str, Any]) -> dict[str, Any]:
        self.actor_cid = c.cid
        reply = c.c.send({"request_id": str(uuid.uuid4()), **frame})
        assert reply["type"] == "ack" and reply["workspace_id"] == c.wid, reply
        data = reply["data"]
        if data["ok"]:
            self.task_events.append((c.wid, data["seq"], c.cid))
        return dict(data)

    @precondition(lambda self: self.open_conns())
    @rule(data=st.data())
    def create_task(self, data: st.DataObject) -> None:
        c = data.draw(st.sampled_from(self.open_conns()))
        assignee = data.draw(st.none() | st.sampled_from(sorted(self.members[c.wid])))
        out = self._mutate(c, {"action": "task.create", "task": {"title": "t", "assigned_to": assignee}})
        assert out["ok"], out
        self.tasks[c.wid].append(out["task"]["id"])

    @precondition(lambda self: any(self.tasks[c.wid] for c in self.open_conns()))
    @rule(data=st.data())
    def update_task(self, data: st.DataObject) -> None:
        c = data.draw(st.sampled_from([c for c in self.open_conns() if self.tasks[c.wid]]))
        tid = data.draw(st.sampled_from(self.tasks[c.wid]))
        changes = data.draw(
            st.sampled_from(
                [
                    {"title": f"edit {uuid.uuid4().hex[:4]}"},
                    {"status": "done"},
                    {"assigned_to": data.draw(st.sampled_from(sorted(self.members[c.wid])))},
                    {"assigned_to": None},
                ]
            )
        )
        out = self._mutate(c, {"action": "task.update", "task_id": tid, "changes": changes})
        assert out["ok"] or out["error"]["code"] in ("not_found", "validation_error"), out

    @precondition(lambda self: any(self.tasks[c.wid] for c in self.open_conns()))
    @rule(data=st.data())
    def delete_task(self, data: st.DataObject) -> None:
        c = data.draw(st.sampled_from([c for c in self.open_conns() if self.tasks[c.wid]]))
        tid = data.draw(st.sampled_from(self.tasks[c.wid]))
        out = self._mutate(c, {"action": "task.delete", "task_id": tid})
        assert out["ok"] or out["error"]["code"] == "not_found", out
        self.tasks[c.wid].remove(tid)

    # -- presence and sync --------------------------------------------------------------------
    @precondition(lambda self: self.open_conns())
    @rule(data=st.data(), status=st.sampled_from(["active", "away"]))
    def presence_update(self, data: st.DataObject, status: str) -> None:
        c = data.draw(st.sampled_from(self.open_conns()))
        assert c.c.send({"action": "presence.update", "status": status, "viewing": None}) is None

    @precondition(lambda self: self.open_conns())
    @rule(data=st.data())
    def heartbeat(self, data: st.DataObject) -> None:
        c = data.draw(st.sampled_from(self.open_conns()))
        assert c.c.heartbeat()["type"] == "heartbeat.ack"

    @precondition(lambda self: self.open_conns())
    @rule(data=st.data())
    def sync(self, data: st.DataObject) -> None:
        c = data.draw(st.sampled_from(self.open_conns()))
        reply = c.c.send({"action": "sync", "since": 0})
        assert reply["type"] == "sync" and reply["workspace_id"] == c.wid, reply
        assert all(ev["workspace_id"] == c.wid for ev in reply["data"]["events"])
        assert {p["user"]["id"] for p in reply["data"]["presence"]} <= self.members[c.wid]
        recipients = self._recipients([n["id"] for n in reply["data"]["notifications"]])
        assert set(recipients.values()) <= {c.user}

    # -- membership ----------------------------------------------------------------------------
    @rule(data=st.data())
    def add_member(self, data: st.DataObject) -> None:
        wid = data.draw(st.sampled_from(self.wids))
        outsiders = [u for u in self.users if u not in self.members[wid]]
        if not outsiders:
            return
        user = data.draw(st.sampled_from(outsiders))
        self.api.add(self.owners[wid], wid, user)
        self.members[wid].add(user)

    def _removable(self) -> list[tuple[str, str]]:
        return [(w, u) for w in self.wids for u in sorted(self.members[w]) if u != self.owners[w]]

    def _closed(self, wid: str, user: str) -> None:
        self.members[wid].discard(user)
        for c in self.open_conns(wid):
            if c.user == user:
                c.open = False

    @precondition(lambda self: self._removable())
    @rule(data=st.data())
    def remove_member_over_http(self, data: st.DataObject) -> None:
        wid, user = data.draw(st.sampled_from(self._removable()))
        member_path = load_integration_module("test_http_helpers").member_path
        assert self.api.call("DELETE", member_path(wid, user), self.owners[wid]).status == 204
        self._closed(wid, user)

    @precondition(lambda self: self._removable())
    @rule(data=st.data())
    def remove_member_directly(self, data: st.DataObject) -> None:
        from collab.domain import presence

        wid, user = data.draw(st.sampled_from(self._removable()))
        self.world.remove_member(wid, user)
        presence.close_user(self.world.rt, self.world.rt.gateway_for(None), wid, user)
        self._closed(wid, user)

    # -- the property ----------------------------------------------------------------------------
    def _recipients(self, ids: list[str]) -> dict[str, str]:
        if not ids:
            return {}
        rows = self.world.rt.db.run(
            lambda cur: cur.execute(
                "SELECT id, user_id FROM notifications WHERE id = ANY(%s)", (ids,)
            ).fetchall()
        )
        return {str(r["id"]): r["user_id"] for r in rows}

    @invariant()
    def every_post_went_where_it_may(self) -> None:
        posts = self.world.sink.posts[self.seen :]
        notes = self._recipients(
            [f["data"]["notification"]["id"] for _, f in posts if f["type"] == "notification.created"]
        )
        delivered: set[tuple[str, int]] = set()
        for cid, f in posts:
            c = self.conns.get(cid)
            assert c is not None, f"a post to a connection nobody opened: {f}"
            assert c.open, f"a post to a closed connection ({c.user} in {c.wid}): {f['type']}"
            kind = f["type"]
            if kind == "notification.created":
                n = f["data"]["notification"]
                assert notes[n["id"]] == c.user, f"{c.user} got {notes[n['id']]}'s notification"
                wid = n["workspace_id"]
                if wid is not None:  # about a workspace: to its members (or the one added / removed)
                    member = {
                        "member.added": c.user in self.members[wid],
                        "member.removed": c.user in self.before[wid],
                    }.get(n["type"], c.user in self.before[wid] and c.user in self.members[wid])
                    assert member, f"{c.user} told about {n['type']} in a workspace they are not a member of"
                continue
            assert kind.split(".")[0] in ("task", "member", "presence"), f"unexpected post {kind}"
            assert f["workspace_id"] == c.wid, f"{kind} of another workspace reached {c.user}"
            assert c.user in self.before[c.wid] and c.user in self.members[c.wid], (
                f"{kind} reached {c.user}, not a member of its workspace throughout"
            )
            if kind.startswith("task."):
                assert cid != self.actor_cid, "a task event went back to the connection that made it"
                delivered.add((cid, f["seq"]))
        for wid, seq, actor in self.task_events:
            for c in self.open_conns(wid):
                if c.cid != actor:
                    assert (c.cid, seq) in delivered, f"{c.user} missed seq {seq} of its workspace"
        self.step_checks += 1
        self._begin()


@pytest.fixture
def machine(world: Any, settings: Any) -> type[Isolation]:
    helpers = load_integration_module("test_http_helpers")
    Isolation.world = world
    Isolation.api = helpers.Api(settings)
    return Isolation


def test_no_event_crosses_a_workspace_or_reaches_a_non_member(machine):
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(
        machine,
        settings=run_settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            database=None,
            phases=PHASES,
            suppress_health_check=list(HealthCheck),
        ),
    )


def test_a_removed_assignee_hears_nothing_more_of_the_workspace(world, settings):
    # Given bob, a member of two workspaces, assigned a task in the first, online in the second
    api = load_integration_module("test_http_helpers").Api(settings)
    member_path = load_integration_module("test_http_helpers").member_path
    first, second = api.workspace("ann", "First"), api.workspace("cat", "Second")
    api.add("ann", first, "bob")
    api.add("cat", second, "bob")
    ann = world.connect("ann", first)
    bob_elsewhere = world.connect("bob", second)
    tid = ann.create("Secret plan", assigned_to="bob")["data"]["task"]["id"]
    assert [f["data"]["notification"]["type"] for f in bob_elsewhere.received("notification.created")] == [
        "task.assigned"
    ]

    # When bob is removed from the first workspace, and the task he still holds changes, moves
    # to someone else, and is deleted
    assert api.call("DELETE", member_path(first, "bob"), "ann").status == 204
    heard = len(bob_elsewhere.received())
    ann.update(tid, title="Secret plan, revised")
    ann.update(tid, status="done")
    ann.send({"action": "task.delete", "request_id": str(uuid.uuid4()), "task_id": tid})

    # Then he hears about his removal, and nothing else from that workspace: not over any of his
    # connections, and not in the notifications his next sync would claim
    after = bob_elsewhere.received()[heard:]
    assert [f["type"] for f in after] == [], [f["data"] for f in after]
    about_first = world.rt.db.run(
        lambda cur: cur.execute(
            "SELECT type FROM notifications WHERE user_id = 'bob' AND workspace_id = %s ORDER BY created_at",
            (first,),
        ).fetchall()
    )
    assert [n["type"] for n in about_first] == ["task.assigned", "member.added", "member.removed"] or [
        n["type"] for n in about_first
    ] == ["member.added", "task.assigned", "member.removed"]
