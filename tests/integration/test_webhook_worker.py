"""The webhook domain step by step, against Postgres and Redis: what an endpoint looks like, who may
change it, what each delivery sends (URL, secret, ``webhook-id``, body, limits), batches and their
continuations, the retry schedule to the second, the 24-hour cut-off, redeliveries, presence
events, the minute tick and the attempt log.

``test_webhooks.py`` runs the whole path (SQS in moto, a real receiver, the reference signature
check); here the sender and the queue are recorders, so each rule is checked exactly and fast."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from test_http_webhooks import fake_resolve

from collab.adapters.webhooks import addresses, sender
from collab.adapters.webhooks.sender import Attempt
from collab.clock import ManualClock, iso
from collab.domain import webhooks
from collab.errors import Forbidden, NotFound, ValidationError

URL = "https://hooks.example.test/in"  # resolves to a public address (fake_resolve)
UNRESOLVED = "https://hooks.nonexistent.invalid/in"
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
OK = Attempt(True, 200, None, 12)
DOWN = Attempt(False, 503, "HTTP 503", 40)


@dataclass
class Sent:
    url: str
    secret: str
    msg_id: str
    body: dict[str, Any]
    allow_loopback: bool
    timeout: float


@dataclass
class Sender:
    """Stands in for :func:`sender.deliver`: records each request, answers from ``answers`` (then OK)."""

    calls: list[Sent] = field(default_factory=list)
    answers: list[Attempt] = field(default_factory=list)
    always: Attempt | None = None

    def __call__(
        self, url: str, secret: str, msg_id: str, body: bytes, *, allow_loopback: bool, timeout: float
    ) -> Attempt:
        self.calls.append(Sent(url, secret, msg_id, json.loads(body), allow_loopback, timeout))
        if self.always is not None:
            return self.always
        return self.answers.pop(0) if self.answers else OK

    def seqs(self) -> list[int]:
        return [c.body["data"]["seq"] for c in self.calls]


@dataclass
class Queue:
    """Stands in for the SQS FIFO queue: (group, body, deduplication id) per message."""

    sent: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)
    broken: bool = False

    def send(self, group: str, body: dict[str, Any], dedup: str) -> None:
        if self.broken:
            raise RuntimeError("queue unavailable")
        self.sent.append((group, body, dedup))


class Bench:
    def __init__(self, world: Any, rt: Any, queue: Queue, send: Sender) -> None:
        self.world, self.rt, self.queue, self.send = world, rt, queue, send

    def board(
        self, owner: str = "alice", *, admins: tuple[str, ...] = (), members: tuple[str, ...] = ()
    ) -> str:
        wid = self.world.workspace(owner, *admins, *members)
        for a in admins:
            self.sql(
                "UPDATE workspace_members SET role = 'admin' WHERE workspace_id = %s AND user_id = %s", wid, a
            )
        return wid

    def sql(self, statement: str, *args: Any) -> list[dict[str, Any]]:
        def tx(cur: Any) -> list[dict[str, Any]]:
            c = cur.execute(statement, args)
            return c.fetchall() if c.description else []

        return self.rt.db.run(tx)

    def log(self, wid: str, *types: str) -> list[int]:
        """Events in the activity log (as ``events.publish`` leaves them), without waking anything."""

        def tx(cur: Any) -> list[int]:
            last = cur.execute("SELECT last_seq FROM workspaces WHERE id = %s FOR UPDATE", (wid,)).fetchone()
            seqs = []
            for i, t in enumerate(types, start=int(last["last_seq"]) + 1):
                payload = {"task": {"id": str(uuid.uuid4()), "title": f"t{i}"}}
                cur.execute(
                    "INSERT INTO activity (workspace_id, seq, actor_id, type, payload) VALUES (%s, %s, %s, %s, %s)",
                    (wid, i, "alice", t, json.dumps(payload)),
                )
                seqs.append(i)
            cur.execute("UPDATE workspaces SET last_seq = last_seq + %s WHERE id = %s", (len(types), wid))
            return seqs

        return self.rt.db.run(tx)

    def hook(self, wid: str, hid: str) -> dict[str, Any]:
        return next(h for h in webhooks.list_hooks(self.rt.db, "alice", wid)["items"] if h["id"] == hid)

    def attempts(self, wid: str, hid: str, limit: int = 100) -> list[dict[str, Any]]:
        return list(webhooks.deliveries(self.rt.db, "alice", wid, hid, limit)["items"])

    def now(self) -> datetime:
        return self.rt.clock.utcnow()

    @contextmanager
    def runtime(self, queue: Queue | None = None, store: Any = None, **settings: Any) -> Iterator[Any]:
        """Another container over the same services and clock: without a queue unless given one,
        with ``settings`` changed."""
        from collab import runtime

        rt = runtime.Runtime(
            self.rt.settings.model_copy(update=settings), clock=self.rt.clock, queue=queue, store=store
        )
        try:
            yield rt
        finally:
            if "db" in rt.__dict__:
                rt.db.close()


@pytest.fixture
def clock() -> ManualClock:
    """Whole seconds: a schedule computed here is exact to the microsecond Postgres keeps."""
    return ManualClock(float(int(time.time())))


@pytest.fixture
def bench(world: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bench]:
    from collab import runtime

    monkeypatch.setattr(addresses, "_resolve", fake_resolve)
    send = Sender()
    monkeypatch.setattr(sender, "deliver", send)
    queue = Queue()
    settings = world.rt.settings.model_copy(update={"webhook_timeout_s": 3.5})
    old = world.rt
    rt = runtime.Runtime(settings, clock=old.clock, queue=queue)
    runtime.install(rt)
    world.rt = rt
    try:
        yield Bench(world, rt, queue, send)
    finally:
        world.rt = old
        runtime.install(old)
        if "db" in rt.__dict__:
            rt.db.close()


def flagged(b: Bench, wid: str) -> bool:
    from collab.adapters.redis import keys

    return bool(b.rt.store.r.exists(keys.ws(wid, "webhooks")))  # what presence webhooks read too


# -- the admin's side -----------------------------------------------------------------------------
def test_an_endpoint_as_registered_listed_and_deleted(bench: Bench) -> None:
    wid = bench.board(admins=("erin",), members=("bob",))
    bench.log(wid, "task.created", "task.created", "task.updated")

    made = webhooks.register(bench.rt, "erin", wid, URL, ["task.deleted", "task.created", "task.deleted"])
    secret, created_at = made.pop("secret"), made.pop("created_at")
    assert secret.startswith("whsec_") and ISO.fullmatch(created_at)
    assert made == {
        "id": str(uuid.UUID(made["id"])),
        "workspace_id": wid,
        "url": URL,
        "event_types": ["task.created", "task.deleted"],  # sorted, once each
        "created_by": "erin",
        "delivered_seq": 3,  # only what happens from now on is sent
        "attempts": 0,
        "failing_since": None,
        "next_attempt_at": None,
        "last_error": None,
        "status": "active",
        "disabled_at": None,
    }
    assert flagged(bench, wid)  # publish enqueues for this workspace from now on
    other = webhooks.register(bench.rt, "alice", wid, URL + "/2", [])
    listed = webhooks.list_hooks(bench.rt.db, "alice", wid)
    other_listed = {k: v for k, v in other.items() if k != "secret"}
    assert listed == {"items": [{**made, "created_at": created_at}, other_listed], "next_cursor": None}
    with pytest.raises(Forbidden):
        webhooks.list_hooks(bench.rt.db, "bob", wid)

    # deleting one of two keeps the workspace flagged; deleting the last clears it
    with pytest.raises(Forbidden):
        webhooks.delete(bench.rt, "bob", wid, made["id"])
    webhooks.delete(bench.rt, "erin", wid, made["id"])
    assert flagged(bench, wid)
    assert [h["id"] for h in webhooks.list_hooks(bench.rt.db, "alice", wid)["items"]] == [other["id"]]
    with pytest.raises(NotFound) as gone:
        webhooks.delete(bench.rt, "alice", wid, made["id"])
    assert gone.value.message == "webhook not found"
    with pytest.raises(NotFound) as bad:
        webhooks.delete(bench.rt, "alice", wid, "not-a-uuid")
    assert bad.value.message == "webhook not found"
    # an endpoint of another workspace is not found through this one, and stays
    elsewhere = bench.board("alice")
    theirs = webhooks.register(bench.rt, "alice", elsewhere, URL, [])
    with pytest.raises(NotFound):
        webhooks.delete(bench.rt, "alice", wid, theirs["id"])
    assert [h["id"] for h in webhooks.list_hooks(bench.rt.db, "alice", elsewhere)["items"]] == [theirs["id"]]
    webhooks.delete(bench.rt, "alice", wid, other["id"])
    assert not flagged(bench, wid) and flagged(bench, elsewhere)
    assert webhooks.list_hooks(bench.rt.db, "alice", wid) == {"items": [], "next_cursor": None}


def test_registering_checks_the_types_the_role_and_then_the_address(bench: Bench) -> None:
    wid = bench.board(members=("bob",))
    with pytest.raises(ValidationError) as unknown:
        webhooks.register(bench.rt, "alice", wid, URL, ["task.created", "zeta.moved", "alpha.moved"])
    assert (unknown.value.message, unknown.value.extra) == (
        "event_types: unknown type 'alpha.moved'",
        {"field": "event_types"},
    )
    # a member learns nothing about how a URL resolves: the role is checked before the address
    with pytest.raises(Forbidden):
        webhooks.register(bench.rt, "bob", wid, UNRESOLVED, [])
    with pytest.raises(ValidationError) as unresolved:
        webhooks.register(bench.rt, "alice", wid, UNRESOLVED, [])
    assert "does not resolve" in unresolved.value.message
    assert webhooks.list_hooks(bench.rt.db, "alice", wid)["items"] == [] and not flagged(bench, wid)


def test_every_type_is_known_and_a_workspace_has_at_most_ten(bench: Bench) -> None:
    wid = bench.board()
    every = [
        "task.created", "task.updated", "task.deleted", "member.added", "member.removed",
        "member.role_changed", "presence.joined", "presence.left",
    ]  # fmt: skip
    assert webhooks.register(bench.rt, "alice", wid, URL, every)["event_types"] == sorted(every)
    for i in range(9):
        webhooks.register(bench.rt, "alice", wid, f"{URL}/{i}", [])
    with pytest.raises(ValidationError) as full:
        webhooks.register(bench.rt, "alice", wid, URL, [])
    assert (full.value.message, full.value.extra) == ("a workspace has at most 10 webhooks", {"field": "url"})


def test_loopback_and_plain_http_only_where_the_setting_allows(bench: Bench) -> None:
    local = "http://127.0.0.1:8443/in"
    wid = bench.board()
    with pytest.raises(ValidationError):
        webhooks.register(bench.rt, "alice", wid, local, [])
    with bench.runtime(queue=bench.queue, webhook_allow_loopback=True) as rt:  # collab dev's rule
        webhooks.register(rt, "alice", wid, local, ["task.created", "presence.joined"])
        bench.log(wid, "task.created")
        webhooks.deliver_workspace(rt, wid)
        webhooks.handle_message(rt, {"kind": "presence", "workspace_id": wid, "event": joined("bob")})
    assert [(c.url, c.allow_loopback) for c in bench.send.calls] == [(local, True)] * 2


def test_a_role_lost_while_the_address_is_checked_registers_nothing(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The role is checked before the address (which can take seconds of DNS) and again in the
    transaction that writes: an admin demoted in between registers nothing."""
    wid = bench.board(admins=("erin",))
    check = addresses.check

    def slow_check(url: str, **kwargs: Any) -> Any:
        bench.sql(
            "UPDATE workspace_members SET role = 'member' WHERE workspace_id = %s AND user_id = 'erin'", wid
        )
        return check(url, **kwargs)

    monkeypatch.setattr(addresses, "check", slow_check)
    with pytest.raises(Forbidden):
        webhooks.register(bench.rt, "erin", wid, URL, [])
    assert webhooks.list_hooks(bench.rt.db, "alice", wid)["items"] == [] and not flagged(bench, wid)


def test_a_redelivery_request_is_checked_and_queued(bench: Bench) -> None:
    wid = bench.board(members=("bob",))
    hook = webhooks.register(bench.rt, "alice", wid, URL, [])
    bench.sql("UPDATE workspaces SET last_seq = 1000 WHERE id = %s", wid)

    out = webhooks.redeliver(bench.rt, "alice", wid, hook["id"], 1, 1000)  # the most at once
    assert out == {"webhook_id": hook["id"], "from_seq": 1, "to_seq": 1000, "status": "queued"}
    ((group, body, dedup),) = bench.queue.sent
    assert group == wid
    assert body == {
        "kind": "redeliver",
        "workspace_id": wid,
        "webhook_id": hook["id"],
        "from_seq": 1,
        "to_seq": 1000,
    }
    assert re.fullmatch(f"{wid}:redeliver:[0-9a-f-]{{36}}", dedup)
    webhooks.redeliver(bench.rt, "alice", wid, hook["id"], 7, 7)
    assert bench.queue.sent[1][2] != dedup  # two requests are two messages, never deduplicated

    for lo, hi in ((1, 1001), (5, 4)):
        with pytest.raises(ValidationError) as refused:
            webhooks.redeliver(bench.rt, "alice", wid, hook["id"], lo, hi)
        assert (refused.value.message, refused.value.extra) == (
            "to_seq: from from_seq, at most 1000 seqs",
            {"field": "to_seq"},
        )
    with pytest.raises(ValidationError) as beyond:
        webhooks.redeliver(bench.rt, "alice", wid, hook["id"], 990, 1001)
    assert (beyond.value.message, beyond.value.extra) == (
        "to_seq: the workspace's last seq is 1000",
        {"field": "to_seq"},
    )
    with pytest.raises(Forbidden):
        webhooks.redeliver(bench.rt, "bob", wid, hook["id"], 1, 1)
    elsewhere = bench.board("alice")
    theirs = webhooks.register(bench.rt, "alice", elsewhere, URL, [])
    for hid in (theirs["id"], str(uuid.uuid4()), "nope"):
        with pytest.raises(NotFound) as missing:
            webhooks.redeliver(bench.rt, "alice", wid, hid, 1, 1)
        assert missing.value.message == "webhook not found"
    assert len(bench.queue.sent) == 2 and bench.send.calls == []


# -- what a delivery sends --------------------------------------------------------------------------
def test_each_event_is_sent_signed_with_its_id_and_body_within_the_limits(bench: Bench) -> None:
    wid = bench.board()
    hook = webhooks.register(bench.rt, "alice", wid, URL, [])
    secret = hook["secret"]
    seqs = bench.log(wid, "task.created", "task.updated")

    webhooks.handle_message(bench.rt, {"kind": "event", "workspace_id": wid, "seq": 2})

    rows = bench.sql("SELECT * FROM activity WHERE workspace_id = %s ORDER BY seq", wid)
    from collab.domain.events import activity_frame

    frames = [json.loads(json.dumps(activity_frame(r), default=str)) for r in rows]
    assert bench.send.calls == [
        Sent(
            URL,
            secret,
            f"evt_{wid.replace('-', '')}_{seq}",
            {"type": f["type"], "timestamp": f["timestamp"], "data": f},
            False,  # the AWS rule: public addresses only
            3.5,  # the configured timeout
        )
        for seq, f in zip(seqs, frames, strict=True)
    ]
    assert [f["seq"] for f in frames] == [1, 2] and frames[1]["type"] == "task.updated"
    assert bench.hook(wid, hook["id"])["delivered_seq"] == 2
    assert bench.queue.sent == []  # nothing left: no continuation
    log = bench.attempts(wid, hook["id"])
    assert [{k: v for k, v in a.items() if k != "created_at"} for a in log] == [
        {"seq": s, "attempt": 1, "outcome": "delivered", "status_code": 200, "error": None,
         "duration_ms": 12, "redelivery": False}
        for s in (2, 1)
    ]  # fmt: skip
    assert all(ISO.fullmatch(a["created_at"]) for a in log)
    page = webhooks.deliveries(bench.rt.db, "alice", wid, hook["id"], 1)
    assert [a["seq"] for a in page["items"]] == [2] and page["next_cursor"] is None
    elsewhere = bench.board("alice")
    theirs = webhooks.register(bench.rt, "alice", elsewhere, URL, [])
    for hid in (theirs["id"], str(uuid.uuid4()), "nope"):
        with pytest.raises(NotFound) as missing:
            webhooks.deliveries(bench.rt.db, "alice", wid, hid, 10)
        assert missing.value.message == "webhook not found"


def test_a_hundred_events_per_message_and_a_continuation_for_the_rest(bench: Bench) -> None:
    wid = bench.board()
    hook = webhooks.register(bench.rt, "alice", wid, URL, [])
    bench.log(wid, *["task.created"] * 100)
    webhooks.handle_message(bench.rt, {"kind": "event", "workspace_id": wid, "seq": 100})
    assert bench.send.seqs() == list(range(1, 101))
    assert bench.queue.sent == []  # exactly a batch, and nothing after it

    # a second endpoint, registered later, is one event less behind: it finishes in this batch, and
    # the first one's "more" still wakes the worker again
    bench.send.calls.clear()
    bench.log(wid, "task.updated")
    late = webhooks.register(bench.rt, "alice", wid, URL + "/late", [])
    bench.log(wid, *["task.updated"] * 100)
    webhooks.handle_message(bench.rt, {"kind": "event", "workspace_id": wid, "seq": 201})
    assert per_url(bench) == {URL: list(range(101, 201)), URL + "/late": list(range(102, 202))}
    ((group, body, dedup),) = bench.queue.sent
    assert (group, body) == (wid, {"kind": "catch_up", "workspace_id": wid})
    assert re.fullmatch(f"{wid}:more:[0-9a-f-]{{36}}", dedup)
    assert bench.hook(wid, hook["id"])["delivered_seq"] == 200
    assert bench.hook(wid, late["id"])["delivered_seq"] == 201

    bench.send.calls.clear()
    webhooks.handle_message(bench.rt, body)
    assert per_url(bench) == {URL: [201]}
    assert len(bench.queue.sent) == 1
    assert bench.hook(wid, hook["id"])["delivered_seq"] == 201


def per_url(b: Bench) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for c in b.send.calls:
        out.setdefault(c.url, []).append(c.body["data"]["seq"])
    return out


def test_unwanted_types_move_the_cursor_and_a_spent_budget_hands_over(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    wid = bench.board()
    hook = webhooks.register(bench.rt, "alice", wid, URL, ["task.deleted"])
    every = webhooks.register(bench.rt, "alice", wid, URL + "/all", [])
    bench.log(wid, "task.created", "task.updated", "task.deleted", "task.created")

    monkeypatch.setattr(webhooks, "BUDGET_S", -1.0)  # the message's time is already spent
    assert webhooks.deliver_workspace(bench.rt, wid) is True
    assert bench.send.calls == []
    # the filtered endpoint moved past what it does not want, up to the event it waits for
    assert bench.hook(wid, hook["id"])["delivered_seq"] == 2
    assert bench.hook(wid, every["id"])["delivered_seq"] == 0

    monkeypatch.setattr(webhooks, "BUDGET_S", 45.0)
    assert webhooks.deliver_workspace(bench.rt, wid) is False
    assert [(c.url, c.body["data"]["seq"]) for c in bench.send.calls] == [
        (URL, 3),
        (URL + "/all", 1), (URL + "/all", 2), (URL + "/all", 3), (URL + "/all", 4),
    ]  # fmt: skip
    assert bench.hook(wid, hook["id"])["delivered_seq"] == 4  # the last one, unwanted, passed too
    assert bench.hook(wid, every["id"])["delivered_seq"] == 4


# -- failures ---------------------------------------------------------------------------------------
def test_failures_back_off_on_schedule_and_24_hours_disable_and_tell_the_admins(bench: Bench) -> None:
    wid = bench.board(admins=("erin",), members=("bob",))
    hook = webhooks.register(bench.rt, "alice", wid, URL, [])
    alice, bob = bench.world.connect("alice", wid), bench.world.connect("bob", wid)
    bench.log(wid, "task.created", "task.updated")
    bench.send.always = DOWN
    t0 = bench.now()

    assert webhooks.deliver_workspace(bench.rt, wid) is False  # a failure asks for no continuation
    state = bench.hook(wid, hook["id"])
    assert {
        k: state[k] for k in ("status", "attempts", "failing_since", "next_attempt_at", "last_error")
    } == {
        "status": "failing",
        "attempts": 1,
        "failing_since": iso(t0),
        "next_attempt_at": iso(t0 + timedelta(seconds=5)),
        "last_error": "HTTP 503",
    }
    assert state["delivered_seq"] == 0 and state["disabled_at"] is None

    schedule = []
    for _ in range(5):
        due = datetime.fromisoformat(bench.hook(wid, hook["id"])["next_attempt_at"])
        bench.rt.clock.advance((due - bench.now()).total_seconds() - 1)
        webhooks.deliver_workspace(bench.rt, wid)  # a second early: not due, nothing sent
        sent = len(bench.send.calls)
        bench.rt.clock.advance(1)
        webhooks.deliver_workspace(bench.rt, wid)
        assert len(bench.send.calls) == sent + 1
        after = bench.hook(wid, hook["id"])
        schedule.append((datetime.fromisoformat(after["next_attempt_at"]) - bench.now()).total_seconds())
        assert after["failing_since"] == iso(t0)
    assert schedule == [300, 1800, 7200, 18000, 36000]
    assert bench.hook(wid, hook["id"])["attempts"] == 6
    assert len(bench.send.calls) == 6 and set(bench.send.seqs()) == {1}  # the second waits behind

    # then every 10 hours; the attempt exactly 24 hours after the first failure disables it
    bench.rt.clock.advance((t0 + timedelta(hours=24) - bench.now()).total_seconds() - 1)
    webhooks.deliver_workspace(bench.rt, wid)
    assert bench.hook(wid, hook["id"])["next_attempt_at"] == iso(bench.now() + timedelta(seconds=36000))
    assert bench.hook(wid, hook["id"])["status"] == "failing"
    bench.sql("UPDATE webhooks SET next_attempt_at = NULL WHERE id = %s", hook["id"])  # due again
    bench.rt.clock.advance(1)
    webhooks.deliver_workspace(bench.rt, wid)
    state = bench.hook(wid, hook["id"])
    assert state["status"] == "disabled" and state["disabled_at"] == iso(t0 + timedelta(hours=24))
    assert state["next_attempt_at"] is None and state["attempts"] == 8

    told = bench.sql(
        "SELECT user_id, workspace_id, payload FROM notifications WHERE type = 'webhook.disabled' ORDER BY user_id"
    )
    assert [r["user_id"] for r in told] == ["alice", "erin"]  # the owner and the admin, not bob
    assert all(str(r["workspace_id"]) == wid for r in told)
    assert told[0]["payload"] == {"webhook_id": hook["id"], "url": URL, "seq": 1, "last_error": "HTTP 503"}
    (live,) = alice.received("notification.created")  # pushed to the admins online at once
    assert live["data"]["notification"]["type"] == "webhook.disabled"
    assert live["data"]["notification"]["payload"]["webhook_id"] == hook["id"]
    assert bob.received("notification.created") == []
    log = bench.attempts(wid, hook["id"])
    assert [a["attempt"] for a in log] == [8, 7, 6, 5, 4, 3, 2, 1]
    assert {(a["outcome"], a["status_code"], a["error"], a["duration_ms"], a["redelivery"]) for a in log} == {
        ("failed", 503, "HTTP 503", 40, False)
    }

    bench.rt.clock.advance(36001)
    webhooks.tick(bench.rt)
    webhooks.deliver_workspace(bench.rt, wid)
    assert len(bench.send.calls) == 8  # disabled: never tried again


def test_after_a_failure_the_next_success_counts_as_the_retry(bench: Bench) -> None:
    wid = bench.board()
    hook = webhooks.register(bench.rt, "alice", wid, URL, [])
    bench.log(wid, "task.created", "task.updated", "task.deleted")
    bench.send.answers = [OK, DOWN, DOWN]
    webhooks.deliver_workspace(bench.rt, wid)
    bench.rt.clock.advance(5)
    webhooks.deliver_workspace(bench.rt, wid)
    bench.rt.clock.advance(300)
    webhooks.deliver_workspace(bench.rt, wid)
    log = bench.attempts(wid, hook["id"])
    assert [(a["seq"], a["attempt"], a["outcome"]) for a in log] == [
        (3, 1, "delivered"), (2, 3, "delivered"), (2, 2, "failed"), (2, 1, "failed"), (1, 1, "delivered"),
    ]  # fmt: skip
    state = bench.hook(wid, hook["id"])
    assert (state["status"], state["attempts"], state["delivered_seq"]) == ("active", 0, 3)
    assert (state["failing_since"], state["next_attempt_at"], state["last_error"]) == (None, None, None)


def test_when_the_live_push_fails_the_admins_still_have_the_notification(
    bench: Bench, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from collab.domain import events

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("gateway down")

    wid = bench.board()
    hook = webhooks.register(bench.rt, "alice", wid, URL, [])
    bench.log(wid, "task.created")
    day_ago = bench.now() - timedelta(hours=24)
    bench.sql("UPDATE webhooks SET failing_since = %s, attempts = 6 WHERE id = %s", day_ago, hook["id"])
    monkeypatch.setattr(events, "push_notifications", broken)
    bench.send.always = DOWN
    with caplog.at_level("WARNING"):
        webhooks.deliver_workspace(bench.rt, wid)
    assert bench.hook(wid, hook["id"])["status"] == "disabled"
    assert [r["user_id"] for r in bench.sql("SELECT user_id FROM notifications")] == ["alice"]
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["webhook disabled", "pushing webhook notifications failed"]
    disabled = caplog.records[0]
    assert (disabled.webhook_id, disabled.seq) == (hook["id"], 1)


def test_an_address_refused_at_delivery_is_logged_as_refused(bench: Bench) -> None:
    wid = bench.board()
    hook = webhooks.register(bench.rt, "alice", wid, URL, [])
    bench.log(wid, "task.created")
    bench.send.answers = [Attempt(False, None, "address is not public", 0, refused=True)]
    webhooks.deliver_workspace(bench.rt, wid)
    ((attempt),) = bench.attempts(wid, hook["id"])
    assert (attempt["outcome"], attempt["status_code"], attempt["error"]) == (
        "refused",
        None,
        "address is not public",
    )


# -- redelivery -----------------------------------------------------------------------------------
def test_a_redelivery_sends_the_range_again_and_stops_at_a_failure(bench: Bench) -> None:
    wid = bench.board()
    hook = webhooks.register(bench.rt, "alice", wid, URL, ["task.created", "task.updated"])
    bench.log(
        wid, "task.created", "task.updated", "task.deleted", "task.created", "task.updated", "task.created"
    )
    message = {"kind": "redeliver", "workspace_id": wid, "webhook_id": hook["id"], "from_seq": 2, "to_seq": 5}

    webhooks.handle_message(bench.rt, message)
    assert bench.send.seqs() == [2, 4, 5]  # the range, inclusive, without the type it does not want
    assert [c.msg_id for c in bench.send.calls] == [f"evt_{wid.replace('-', '')}_{s}" for s in (2, 4, 5)]
    log = bench.attempts(wid, hook["id"])
    assert [(a["seq"], a["attempt"], a["outcome"], a["redelivery"]) for a in log] == [
        (5, 1, "delivered", True), (4, 1, "delivered", True), (2, 1, "delivered", True),
    ]  # fmt: skip
    assert bench.hook(wid, hook["id"])["delivered_seq"] == 0  # the cursor is not the redelivery's

    bench.send.calls.clear()
    bench.send.answers = [OK, DOWN]
    webhooks.handle_message(bench.rt, message)
    assert bench.send.seqs() == [2, 4]  # stopped where it failed
    assert [(a["seq"], a["outcome"]) for a in bench.attempts(wid, hook["id"], limit=2)] == [
        (4, "failed"),
        (2, "delivered"),
    ]
    assert bench.hook(wid, hook["id"])["status"] == "active"  # a redelivery does not schedule retries

    bench.send.calls.clear()
    bench.sql("UPDATE webhooks SET disabled_at = now() WHERE id = %s", hook["id"])
    webhooks.handle_message(bench.rt, message)
    webhooks.handle_message(bench.rt, {**message, "webhook_id": str(uuid.uuid4())})
    assert bench.send.calls == []  # a disabled or deleted endpoint gets nothing


def test_without_a_queue_a_redelivery_is_sent_at_once(bench: Bench) -> None:
    wid = bench.board()
    with bench.runtime() as rt:
        hook = webhooks.register(rt, "alice", wid, URL, [])
        bench.log(wid, "task.created", "task.updated")
        assert webhooks.redeliver(rt, "alice", wid, hook["id"], 2, 2)["status"] == "queued"
    assert bench.send.seqs() == [2] and bench.queue.sent == []


# -- waking the worker ------------------------------------------------------------------------------
def test_enqueue_wakes_the_worker_only_for_a_workspace_with_endpoints(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    wid = bench.board()
    webhooks.enqueue(bench.rt, wid, 1)
    assert bench.queue.sent == []  # no endpoint: no message
    webhooks.register(bench.rt, "alice", wid, URL, [])
    webhooks.enqueue(bench.rt, wid, 2)
    assert bench.queue.sent == [(wid, {"kind": "event", "workspace_id": wid, "seq": 2}, f"{wid}:2")]

    bench.queue.broken = True
    with caplog.at_level("WARNING"):
        webhooks.enqueue(bench.rt, wid, 3)  # the commit stands; the tick catches up
    (logged,) = [r for r in caplog.records if r.getMessage() == "webhook enqueue failed"]
    assert (logged.workspace_id, logged.seq) == (wid, 3)

    with bench.runtime(store=bench.rt.store) as without:
        webhooks.enqueue(without, wid, 4)  # no queue configured: nothing to do, nothing raised
    assert len(bench.queue.sent) == 1


def test_the_minute_tick_wakes_due_workspaces_and_prunes_the_log(bench: Bench) -> None:
    behind, waiting, current, disabled, leaving = (bench.board() for _ in range(5))
    hooks = {
        w: webhooks.register(bench.rt, "alice", w, URL, []) for w in (behind, waiting, current, disabled)
    }
    for w in (behind, waiting, disabled):
        bench.log(w, "task.created")
    later = bench.now() + timedelta(seconds=1)
    bench.sql("UPDATE webhooks SET next_attempt_at = %s WHERE id = %s", later, hooks[waiting]["id"])
    bench.sql("UPDATE webhooks SET disabled_at = now() WHERE id = %s", hooks[disabled]["id"])
    # a presence leave past its window makes a workspace due too
    from collab.domain import webhook_presence

    bench.rt.store.r.zadd(webhook_presence.LEAVES, {leaving: bench.rt.clock.now_ms() - 31_000})
    # attempts a week old and more are pruned; younger ones stay
    week = bench.now() - timedelta(days=7)
    for age in (timedelta(seconds=1), timedelta(0), timedelta(seconds=-1)):
        bench.sql(
            "INSERT INTO webhook_deliveries (webhook_id, seq, attempt, outcome, created_at)"
            " VALUES (%s, 1, 1, 'delivered', %s)",
            hooks[current]["id"],
            week - age,
        )

    assert webhooks.tick(bench.rt) == {"workspaces": 2}
    minute = int(bench.rt.clock.now() // 60)
    assert sorted(bench.queue.sent) == sorted(
        (w, {"kind": "catch_up", "workspace_id": w}, f"{w}:tick:{minute}") for w in (behind, leaving)
    )
    kept = bench.sql("SELECT created_at FROM webhook_deliveries WHERE webhook_id = %s", hooks[current]["id"])
    assert sorted(r["created_at"] for r in kept) == [week, week + timedelta(seconds=1)]

    # the same workspace due for both reasons is woken once
    bench.queue.sent.clear()
    bench.rt.store.r.zadd(webhook_presence.LEAVES, {behind: bench.rt.clock.now_ms() - 31_000})
    assert webhooks.tick(bench.rt) == {"workspaces": 2}
    assert sorted(g for g, _, _ in bench.queue.sent) == sorted([behind, leaving])


def test_without_a_queue_the_tick_delivers_itself(bench: Bench) -> None:
    wid = bench.board()
    with bench.runtime() as rt:
        webhooks.register(rt, "alice", wid, URL, [])
        bench.log(wid, "task.created")
        assert webhooks.tick(rt) == {"workspaces": 1}
    assert bench.send.seqs() == [1] and bench.queue.sent == []


def test_a_batch_of_messages_is_handled_in_order_and_the_schedule_ticks(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    wid = bench.board()
    webhooks.register(bench.rt, "alice", wid, URL, ["presence.joined"])
    records = [
        {
            "messageId": str(i),
            "body": json.dumps({"kind": "presence", "workspace_id": wid, "event": joined(u)}),
        }
        for i, u in enumerate(("bob", "carol", "dave"))
    ]
    assert webhooks.handle(bench.rt, {"Records": records[:2]}) == {"batchItemFailures": []}
    assert [c.body["data"]["user_id"] for c in bench.send.calls] == ["bob", "carol"]
    # a message that cannot be read goes back with those after it, in order, and is logged
    broken = [records[0], {"messageId": "x", "body": "{not json"}, records[2]]
    with caplog.at_level("WARNING"):
        out = webhooks.handle(bench.rt, {"Records": broken})
    assert out == {"batchItemFailures": [{"itemIdentifier": "x"}, {"itemIdentifier": "2"}]}
    assert [c.body["data"]["user_id"] for c in bench.send.calls] == ["bob", "carol", "bob"]
    (logged,) = [r for r in caplog.records if r.getMessage() == "webhook message failed"]
    assert logged.message_id == "x"
    bench.log(wid, "task.created")
    assert webhooks.handle(bench.rt, {"source": "aws.events", "detail-type": "Scheduled Event"}) == {
        "workspaces": 1
    }


# -- presence ---------------------------------------------------------------------------------------
def joined(uid: str, at_ms: int = 1_796_000_000_123, type_: str = "presence.joined") -> dict[str, Any]:
    return {"type": type_, "user": {"id": uid, "display_name": uid.title()}, "at_ms": at_ms}


def test_presence_events_go_once_to_the_endpoints_that_asked(bench: Bench) -> None:
    wid = bench.board()
    asked = webhooks.register(bench.rt, "alice", wid, URL, ["presence.joined", "presence.left"])
    webhooks.register(bench.rt, "alice", wid, URL + "/every", [])  # every type: the seq events only
    webhooks.register(bench.rt, "alice", wid, URL + "/leaves", ["presence.left"])
    off = webhooks.register(bench.rt, "alice", wid, URL + "/off", ["presence.joined"])
    bench.sql("UPDATE webhooks SET disabled_at = now() WHERE id = %s", off["id"])
    at = "2026-11-30T00:53:20.123Z"

    webhooks.handle_message(bench.rt, {"kind": "presence", "workspace_id": wid, "event": joined("bob")})
    webhooks.handle_message(
        bench.rt, {"kind": "presence", "workspace_id": wid, "event": joined("bob", type_="presence.left")}
    )
    compact = wid.replace("-", "")
    assert [(c.url, c.msg_id) for c in bench.send.calls] == [
        (URL, f"prs_{compact}_joined_1796000000123_bob"),
        (URL, f"prs_{compact}_left_1796000000123_bob"),
        (URL + "/leaves", f"prs_{compact}_left_1796000000123_bob"),
    ]
    first = bench.send.calls[0]
    assert (first.secret, first.allow_loopback, first.timeout) == (asked["secret"], False, 3.5)
    assert first.body == {
        "type": "presence.joined",
        "timestamp": at,
        "data": {
            "type": "presence.joined",
            "workspace_id": wid,
            "user_id": "bob",
            "timestamp": at,
            "data": {
                "user": {"id": "bob", "display_name": "Bob"},
                "status": "active",
                "viewing": None,
                "last_seen": at,
            },
        },
    }
    assert bench.send.calls[1].body["data"]["data"]["status"] == "away"
    log = bench.attempts(wid, asked["id"])
    assert [(a["seq"], a["attempt"], a["outcome"], a["redelivery"]) for a in log] == [
        (0, 1, "delivered", False)
    ] * 2

    # an id past 256 characters (a long user id) is cut to the header's limit
    bench.send.calls.clear()
    long_user = "u" * 300
    webhooks.handle_message(bench.rt, {"kind": "presence", "workspace_id": wid, "event": joined(long_user)})
    (sent,) = bench.send.calls
    assert sent.msg_id == f"prs_{compact}_joined_1796000000123_{long_user}"[:256] and len(sent.msg_id) == 256
