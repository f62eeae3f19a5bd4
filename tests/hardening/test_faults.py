"""Faults: Redis and Postgres restarted under a load of edits, connections gone mid-fan-out, the
Management API throttling, the same frame delivered several times.

The restart tests run their own Redis and Postgres (tests/hardening/hardening_services.py, free
ports, a temporary folder) and stop, kill and start them; the others use the harness's services.
Clients behave as the browser client does (hardening_support.Client): they apply task events by
version, retry an edit answered ``internal`` with the same request_id, reconnect with a fresh ticket
when told ``unauthorized``, and ``sync`` from their last contiguous seq.

After every scenario:
  * no handler raised: every frame got a contract reply (``ack`` ok, ``ack`` ok=false with a
    contract code and a message, or an ``error`` frame);
  * no acknowledged edit is lost: the activity log holds it at its seq, with the task as acked;
  * per-field last-write-wins in commit order: each commit changed exactly the fields its request
    sent, to the values it sent, and nothing else (so a later commit wins a field, and fields it did
    not touch keep their values);
  * the tasks table agrees with the log, and every client equals the database after its next sync.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from hardening_services import Services
from hardening_support import CONTRACT_CODES, TASK_FIELDS, Client, activity, db_tasks, db_visible

JWT_SECRET = "hardening-secret-0123456789abcdef0123456789"
TABLES = "notifications, activity, tasks, workspace_members, workspaces, users"
USERS = ("ann", "bob", "cat", "dan")


# -- own services, a world over them -------------------------------------------------------------
@pytest.fixture(scope="module")
def services() -> Iterator[Services]:
    from collab.adapters.postgres.migrate import migrate

    s = Services()
    try:
        s.start()
        migrate(s.postgres.url)
        yield s
    finally:
        s.close()


@pytest.fixture
def own_world(services: Services, harness: Any, sink: Any, moto_endpoint: str) -> Iterator[Any]:
    import redis

    from collab import runtime
    from collab.clock import ManualClock
    from collab.config import load_settings

    with psycopg.connect(services.postgres.url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {TABLES} CASCADE")
    r = redis.Redis.from_url(services.redis.url)
    r.flushall()
    r.close()
    settings = load_settings(
        {
            "DATABASE_URL": services.postgres.url,
            "REDIS_URL": services.redis.url,
            "JWT_SECRET": JWT_SECRET,
            "CONNECTIONS_ENDPOINT": moto_endpoint,
        }
    )
    rt = runtime.Runtime(settings, clock=ManualClock())
    runtime.install(rt)
    w = harness.World(rt, sink)
    w.conn_class = harness.Conn
    yield w
    runtime.install(None)
    rt.db.close()


# -- edits, as clients make them -----------------------------------------------------------------
@dataclass
class Attempt:
    user: str
    frame: dict[str, Any]
    replies: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ack(self) -> dict[str, Any] | None:
        """The data of the first ``ack`` with ok=true."""
        for r in self.replies:
            if r["type"] == "ack" and r["data"]["ok"]:
                return dict(r["data"])
        return None

    @property
    def changes(self) -> dict[str, Any]:
        return dict(self.frame["changes"] if "changes" in self.frame else self.frame.get("task", {}))


def check_reply(reply: dict[str, Any] | None) -> str:
    """A contract reply to a mutation; returns "ok" or the error code."""
    assert reply is not None, "a mutation always gets a reply"
    if reply["type"] == "ack":
        data = reply["data"]
        if data["ok"]:
            return "ok"
        error = data["error"]
    else:
        assert reply["type"] == "error", reply
        error = reply["data"]
    assert error["code"] in CONTRACT_CODES, reply
    assert isinstance(error["message"], str) and error["message"], reply
    return str(error["code"])


class Writer:
    """One user's tab making edits: random updates of the workspace's tasks, some creates (with a
    client-chosen id). ``internal`` answers are retried later with the same request_id;
    ``unauthorized`` makes it reconnect (when the service lets it) and retry."""

    def __init__(self, world: Any, user: str, wid: str, task_ids: list[str], seed: int) -> None:
        self.world, self.user, self.wid = world, user, wid
        self.client = Client(world, user, wid)
        self.task_ids = task_ids
        self.rng = random.Random(seed)
        self.attempts: list[Attempt] = []
        self.pending: list[Attempt] = []
        self.codes: list[str] = []
        self.connected = False
        self.n = 0

    def connect(self) -> bool:
        """A fresh ticket and ``$connect``: 200, or 5xx while a service is down."""
        cid = f"{uuid.uuid4().hex[:15]}="
        out = self.world.connect_raw(self.world.ticket(self.user, self.wid), cid)
        if out["statusCode"] != 200:
            assert out["statusCode"] in (500, 503), out  # the outage, answered
            self.connected = False
            return False
        self.client.conn = self.world.conn_class(self.world, cid, self.user, self.wid)
        self.client.read = 0
        self.connected = True
        return True

    def frame(self) -> dict[str, Any]:
        self.n += 1
        rid = str(uuid.uuid4())
        if self.rng.random() < 0.15:
            return {
                "action": "task.create",
                "request_id": rid,
                "task": {"id": str(uuid.uuid4()), "title": f"{self.user} #{self.n}"},
            }
        names = self.rng.sample(["title", "description", "status", "priority"], self.rng.randint(1, 2))
        values = {
            "title": f"{self.user} title {self.n}",
            "description": f"{self.user} description {self.n}",
            "status": self.rng.choice(["todo", "in_progress", "done"]),
            "priority": self.rng.choice(["low", "medium", "high", "urgent"]),
        }
        return {
            "action": "task.update",
            "request_id": rid,
            "task_id": self.rng.choice(self.task_ids),
            "changes": {n: values[n] for n in names},
        }

    def attempt(self, a: Attempt) -> None:
        if not self.connected and not self.connect():
            if a not in self.pending:
                self.pending.append(a)
            return
        reply = self.client.send(a.frame)
        assert reply is not None
        a.replies.append(reply)
        code = check_reply(reply)
        self.codes.append(code)
        if code == "unauthorized":  # the server no longer knows this connection
            self.connected = False
        if code in ("internal", "unauthorized"):
            if a not in self.pending:
                self.pending.append(a)
        elif a in self.pending:
            self.pending.remove(a)

    def edits(self, n: int) -> None:
        for a in list(self.pending):
            self.attempt(a)
        for _ in range(n):
            a = Attempt(self.user, self.frame())
            self.attempts.append(a)
            self.attempt(a)

    def heartbeat(self) -> None:
        """As every 30 s: a heartbeat; ``unauthorized`` (state lost) means reconnect."""
        if not self.connected:
            return
        reply = self.client.conn.heartbeat()
        if reply["type"] == "error":
            assert reply["data"]["code"] in CONTRACT_CODES and reply["data"]["message"], reply
            if reply["data"]["code"] == "unauthorized":
                self.connected = False
        else:
            assert reply["type"] == "heartbeat.ack", reply

    def recover(self) -> None:
        """After the faults: heartbeat, reconnect if needed, retry what is pending."""
        self.heartbeat()
        if not self.connected:
            assert self.connect()
        for _ in range(3):
            for a in list(self.pending):
                self.attempt(a)


def concurrently(
    writers: list[Writer], job: Callable[[Writer], None], during: Callable[[], None] | None = None
) -> None:
    """Run ``job`` for every writer at once (and ``during`` in this thread meanwhile); re-raise any
    exception a handler let escape."""
    start = threading.Barrier(len(writers) + 1)

    def run(w: Writer) -> None:
        start.wait()
        job(w)

    with ThreadPoolExecutor(len(writers)) as pool:
        futures = [pool.submit(run, w) for w in writers]
        start.wait()
        if during is not None:
            during()
        for f in futures:
            f.result()


# -- the checks ----------------------------------------------------------------------------------
def verify(world: Any, wid: str, attempts: list[Attempt], *, every_commit_acked: bool) -> None:
    """No acknowledged edit lost; each commit changed exactly what its request sent; the tasks table
    agrees with the log. With ``every_commit_acked``, no commit happened whose client was told it
    failed."""
    rows = [r for r in activity(world.rt, wid) if r["type"].startswith("task.")]
    by_seq = {r["seq"]: r for r in rows}
    acked_by_seq: dict[int, Attempt] = {}
    for a in attempts:
        ack = a.ack
        if ack is None:
            continue
        row = by_seq.get(ack["seq"])
        assert row is not None, f"acknowledged edit lost: {a.frame} -> {ack}"
        assert row["payload"]["task"] == ack["task"], (row, ack)
        assert row["actor_id"] == a.user
        acked_by_seq[ack["seq"]] = a

    def request_of(row: dict[str, Any]) -> Attempt:
        if row["seq"] in acked_by_seq:
            return acked_by_seq[row["seq"]]
        assert not every_commit_acked, f"a commit no client was told about: {row}"
        # the outcome of a COMMIT cut by the outage is unknown to its client: it must be one of the
        # attempts answered ``internal``, by the same user, with these values
        task = row["payload"]["task"]
        for a in attempts:
            if a.user != row["actor_id"] or not any(check_reply(r) == "internal" for r in a.replies):
                continue
            if a.frame["action"] == "task.create" and a.frame["task"]["id"] == task["id"]:
                return a
            if a.frame.get("task_id") == task["id"] and all(task[k] == v for k, v in a.changes.items()):
                return a
        raise AssertionError(f"a commit no attempt explains: {row}")

    last: dict[str, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: r["seq"]):
        task = row["payload"]["task"]
        a = request_of(row)
        prev = last.get(task["id"])
        if prev is None:
            assert row["type"] == "task.created" and task["version"] == 1
            assert all(task[k] == v for k, v in a.changes.items()), (a.frame, task)
        else:
            assert task["version"] == prev["version"] + 1, (prev, task)
            changed = {f for f in TASK_FIELDS if task[f] != prev[f]}
            sent = a.changes
            assert changed <= set(sent), f"commit {row['seq']} changed {changed - set(sent)} it was not sent"
            assert all(task[k] == v for k, v in sent.items()), f"commit {row['seq']} lost a value it was sent"
        last[task["id"]] = task
    stored = db_tasks(world.rt, wid)
    assert stored == last, "the tasks table and the activity log disagree"


def converged(writers: list[Writer], world: Any, wid: str) -> None:
    truth = db_visible(world.rt, wid)
    for w in writers:
        w.client.sync()  # pumps what arrived live, then asks for the rest
        assert w.client.visible() == truth, f"{w.user}'s board differs from the database after sync"


def setup_board(world: Any, n_tasks: int = 6) -> tuple[str, list[Writer]]:
    wid = world.workspace(*USERS)
    owner = Writer(world, "ann", wid, [], 0)
    assert owner.connect()
    task_ids = []
    for i in range(n_tasks):
        a = Attempt(
            "ann", {"action": "task.create", "request_id": str(uuid.uuid4()), "task": {"title": f"t{i}"}}
        )
        owner.attempts.append(a)
        owner.attempt(a)
        assert a.ack is not None, a.replies
        task_ids.append(a.ack["task"]["id"])
    writers = [owner] + [Writer(world, u, wid, task_ids, i + 1) for i, u in enumerate(USERS[1:])]
    owner.task_ids = task_ids
    for w in writers[1:]:
        assert w.connect()
    for w in writers:
        w.client.sync()
    return wid, writers


# -- Redis restarted under load -------------------------------------------------------------------
def test_redis_restart_during_a_load_of_edits(own_world, services):
    world = own_world
    # Given four users' tabs on a board of six tasks
    wid, writers = setup_board(world)
    outage_codes: list[str] = []

    # When they edit at once, with Redis up
    concurrently(writers, lambda w: w.edits(6))

    # and Redis goes down; bob's and dan's next frames land on containers that never saw them
    services.redis.stop()
    for w in writers:
        if w.user in ("bob", "dan"):
            world.rt.connections.pop(w.client.conn.cid, None)
    mark = {w.user: len(w.codes) for w in writers}
    concurrently(writers, lambda w: (w.edits(4), w.heartbeat()))
    for w in writers:
        outage_codes += w.codes[mark[w.user] :]

    # and Redis comes back empty: connections, history, limits and request records are gone
    services.redis.start()
    concurrently(writers, lambda w: w.edits(6))

    # and it is killed and restarted again while edits are in flight
    concurrently(
        writers, lambda w: w.edits(8), during=lambda: (time.sleep(0.05), services.redis.restart(kill=True))
    )
    for w in writers:
        w.recover()

    # Then the outage was answered with contract errors, never a crash
    assert outage_codes and set(outage_codes) <= {"internal"}, outage_codes
    # and nothing acknowledged was lost, no commit went untold, every field is last-write-wins
    attempts = [a for w in writers for a in w.attempts]
    assert all(a.ack for a in attempts), [a.replies for a in attempts if not a.ack]  # retries made it
    verify(world, wid, attempts, every_commit_acked=True)
    # and every tab, reconnected and synced, shows the database
    converged(writers, world, wid)


# -- Postgres restarted under load ----------------------------------------------------------------
def test_postgres_restart_during_a_load_of_edits(own_world, services):
    world = own_world
    # Given four users' tabs on a board of six tasks
    wid, writers = setup_board(world)

    # When they edit at once, with Postgres up
    concurrently(writers, lambda w: w.edits(6))

    # and Postgres is down (sessions terminated) while they go on editing and syncing
    services.postgres.stop()
    mark = {w.user: len(w.codes) for w in writers}
    sync_replies: list[dict[str, Any]] = []

    def edit_and_sync(w: Writer) -> None:
        w.edits(4)
        reply = w.client.conn.send({"action": "sync", "since": w.client.contiguous})
        sync_replies.append(reply)

    concurrently(writers, edit_and_sync)
    outage_codes = [c for w in writers for c in w.codes[mark[w.user] :]]

    # and comes back; then crashes (immediate stop) and restarts while edits are in flight
    services.postgres.start()
    concurrently(writers, lambda w: w.edits(6))
    concurrently(
        writers,
        lambda w: w.edits(8),
        during=lambda: (time.sleep(0.05), services.postgres.restart(mode="immediate")),
    )
    for w in writers:
        w.recover()

    # Then the outage was answered with contract errors: internal, with a message
    assert outage_codes and set(outage_codes) == {"internal"}, outage_codes
    for reply in sync_replies:
        assert reply is not None and reply["type"] == "error" and reply["data"]["code"] == "internal", reply
    # and nothing acknowledged was lost; per-field last-write-wins (a COMMIT cut by the crash may
    # have happened without its client knowing; its retry then applies the same values again)
    attempts = [a for w in writers for a in w.attempts]
    for a in attempts:  # each made it; a create whose first COMMIT did happen meets itself: conflict
        assert a.ack or (a.frame["action"] == "task.create" and check_reply(a.replies[-1]) == "conflict"), a
    verify(world, wid, attempts, every_commit_acked=False)
    # and every tab equals the database after its sync
    converged(writers, world, wid)

    # When acknowledged frames are delivered again (the last three of each tab)
    committed = len(activity(world.rt, wid))
    for w in writers:
        for a in [a for a in w.attempts if a.ack][-3:]:
            again = w.client.conn.send(a.frame)
            # Then they get their first answer, and change nothing
            assert again is not None and again["data"] == a.ack, (again, a.ack)
    assert len(activity(world.rt, wid)) == committed


# -- the Management API: gone connections, throttling ----------------------------------------------
class GoneLater(set[str]):
    """``sink.gone`` that also holds ``later`` once the Management API has seen ``after`` attempts:
    connections that go away in the middle of a fan-out."""

    def __init__(self, sink: Any, later: set[str], after: int) -> None:
        super().__init__(sink.gone)
        self.sink, self.later, self.after = sink, later, after

    def __contains__(self, cid: object) -> bool:
        return set.__contains__(self, cid) or (cid in self.later and len(self.sink.attempts) > self.after)


def tab(world: Any, user: str, wid: str) -> Client:
    c = Client(world, user, wid)
    c.connect()
    c.sync()
    return c


def edit(client: Client, task_id: str, **changes: Any) -> dict[str, Any]:
    reply = client.send(
        {"action": "task.update", "request_id": str(uuid.uuid4()), "task_id": task_id, "changes": changes}
    )
    assert reply is not None and reply["data"]["ok"], reply
    return dict(reply["data"])


def notifications_of(world: Any, user: str) -> list[dict[str, Any]]:
    return world.rt.db.run(
        lambda cur: cur.execute(
            "SELECT id, delivered_at FROM notifications WHERE user_id = %s ORDER BY created_at", (user,)
        ).fetchall()
    )


def test_connections_gone_mid_fanout(world):
    # Given ann and five peers, fay with two tabs, everyone synced and present
    wid = world.workspace("ann", "bob", "cat", "dan", "eve", "fay")
    ann = tab(world, "ann", wid)
    bob, cat, dan, eve, fay1, fay2 = (tab(world, u, wid) for u in ("bob", "cat", "dan", "eve", "fay", "fay"))
    task = ann.send({"action": "task.create", "request_id": str(uuid.uuid4()), "task": {"title": "shared"}})
    tid = task["data"]["task"]["id"]

    # When bob's connection is gone before ann's next edit (which assigns him the task)
    world.sink.gone.add(bob.conn.cid)
    first = edit(ann, tid, assigned_to="bob", title="for bob")
    # and cat's and fay's first tab go away in the middle of the fan-out of the one after
    world.sink.gone = GoneLater(world.sink, {cat.conn.cid, fay1.conn.cid}, after=len(world.sink.attempts) + 1)
    second = edit(ann, tid, status="in_progress")
    third = edit(ann, tid, priority="urgent")

    # Then every edit was acknowledged, and the peers still there got every event, in order
    gone = {bob.conn.cid, cat.conn.cid, fay1.conn.cid}
    seqs = [task["data"]["seq"], first["seq"], second["seq"], third["seq"]]
    for peer in (dan, eve, fay2):
        assert [
            f["seq"] for f in peer.conn.received("task.created") + peer.conn.received("task.updated")
        ] == seqs
    # and the gone connections were pruned from Redis once found gone, and not tried again after
    assert not gone & set(world.rt.store.workspace_connections(wid))
    assert all(world.rt.store.connection(cid) is None for cid in gone)
    tried = len(world.sink.attempts)
    edit(ann, tid, description="after the prune")
    assert not gone & set(world.sink.attempts[tried:])
    # and bob and cat left the workspace's presence (their only tab); fay did not (one tab left)
    left = {f["data"]["user"]["id"] for f in dan.conn.received("presence.left")}
    assert left == {"bob", "cat"}
    # and bob's notifications (assigned, then changed), never delivered, wait for his next sync
    notes = notifications_of(world, "bob")
    assert len(notes) == 4 and all(n["delivered_at"] is None for n in notes)

    # When the gone tabs reconnect with fresh tickets and sync
    for client in (bob, cat, fay1):
        client.connect()
        reply = client.sync()
        if client is bob:
            assert [n["id"] for n in reply["data"]["notifications"]] == [str(n["id"]) for n in notes]
    # Then bob's notifications came exactly once, and every tab shows the database
    assert bob.send({"action": "sync", "since": bob.contiguous})["data"]["notifications"] == []
    truth = db_visible(world.rt, wid)
    for client in (ann, bob, cat, dan, eve, fay1, fay2):
        client.sync()
        assert client.visible() == truth, client.user


def test_management_api_throttling_for_a_while(world):
    # Given ann editing with three peers online
    wid = world.workspace("ann", "bob", "cat", "dan")
    ann = tab(world, "ann", wid)
    peers = [tab(world, u, wid) for u in ("bob", "cat", "dan")]
    tid = ann.send({"action": "task.create", "request_id": str(uuid.uuid4()), "task": {"title": "t"}})[
        "data"
    ]["task"]["id"]

    # When the Management API answers 429 to the next 40 posts (each post is tried 4 times)
    world.sink.throttle = 40
    acks = [edit(ann, tid, title="edit 0", assigned_to="bob")]
    acks += [edit(ann, tid, title=f"edit {i}") for i in range(1, 5)]
    throttled_attempts = len(world.sink.attempts)
    # and stops throttling
    acks.append(edit(ann, tid, status="done"))

    # Then every edit was acknowledged, and committed
    for a in acks:
        assert a["ok"] and db_tasks(world.rt, wid)[tid]["version"] >= a["task"]["version"]
    # and throttled posts were retried, not dropped at the first 429, nor taken for gone connections
    assert world.sink.throttle == 0 and throttled_attempts > 40
    assert set(world.rt.store.workspace_connections(wid)) == {ann.conn.cid, *(p.conn.cid for p in peers)}
    for peer in peers:
        peer.pump()
        got = sorted(peer.seqs)
        assert got[-1] == acks[-1]["seq"]  # the last event arrived live
        # a peer that missed events sees a gap and syncs: then it shows the database
        peer.sync()
        assert peer.contiguous == acks[-1]["seq"] and peer.visible() == db_visible(world.rt, wid)
    # and each of bob's notifications (assigned, changed, ...) came once: pushed, or, where the post
    # failed, with his sync
    notes = notifications_of(world, "bob")
    pushed = [
        f["data"]["notification"]["id"] for f in peers[0].frames_seen if f["type"] == "notification.created"
    ]
    synced = [
        n["id"] for f in peers[0].frames_seen if f["type"] == "sync" for n in f["data"]["notifications"]
    ]
    assert sorted(pushed + synced) == sorted(str(n["id"]) for n in notes)
    assert synced, "some posts failed under throttling: their notifications came with the sync"
    assert all(n["delivered_at"] is not None for n in notes)


# -- the same frame delivered several times ---------------------------------------------------------
def test_duplicated_deliveries_of_the_same_frame(world):
    # Given ann with two tabs and bob watching
    wid = world.workspace("ann", "bob")
    ann1, ann2, bob = tab(world, "ann", wid), tab(world, "ann", wid), tab(world, "bob", wid)
    tid = ann1.send({"action": "task.create", "request_id": str(uuid.uuid4()), "task": {"title": "t"}})[
        "data"
    ]["task"]["id"]
    rng = random.Random(8)
    frames: list[dict[str, Any]] = []

    # When each of a series of frames is delivered 2-5 times, one after the other, from either tab
    for i in range(6):
        frame = {
            "action": "task.update",
            "request_id": str(uuid.uuid4()),
            "task_id": tid,
            "changes": {"title": f"v{i}"},
        }
        if i % 3 == 2:
            frame = {
                "action": "task.create",
                "request_id": str(uuid.uuid4()),
                "task": {"id": str(uuid.uuid4()), "title": f"new {i}"},
            }
        answers = [rng.choice([ann1, ann2]).conn.send(frame)["data"] for _ in range(rng.randint(2, 5))]
        # Then every copy gets the first answer, byte for byte
        assert answers[0]["ok"] and all(a == answers[0] for a in answers), answers
        frames.append(frame)

    # When frames are delivered 2-5 times at once (API Gateway retries, two tabs resending)
    for i in range(4):
        frame = {
            "action": "task.update",
            "request_id": str(uuid.uuid4()),
            "task_id": tid,
            "changes": {"status": ["todo", "done"][i % 2]},
        }
        copies = rng.randint(2, 5)
        barrier = threading.Barrier(copies)

        def send(
            k: int, frame: dict[str, Any] = frame, barrier: threading.Barrier = barrier
        ) -> dict[str, Any]:
            barrier.wait()
            return dict((ann1 if k % 2 else ann2).conn.send(frame)["data"])

        with ThreadPoolExecutor(copies) as pool:
            answers = list(pool.map(send, range(copies)))
        # Then one of them ran, and the others waited for its answer and got it
        assert answers[0]["ok"] and all(a == answers[0] for a in answers), answers
        frames.append(frame)

    # Then each frame was committed exactly once: one activity row, one event for bob, per request
    rows = [r for r in activity(world.rt, wid) if r["type"].startswith("task.")]
    assert len(rows) == 1 + len(frames)
    bob.pump()
    assert sorted(bob.seqs) == [r["seq"] for r in rows]
    events = bob.conn.received("task.updated") + bob.conn.received("task.created")
    assert len(events) == len({e["seq"] for e in events}) == len(rows)
    # and every tab shows the database after its sync
    truth = db_visible(world.rt, wid)
    for client in (ann1, ann2, bob):
        client.sync()
        assert client.visible() == truth
