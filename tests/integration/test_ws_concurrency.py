"""Many writers on one task: per-field last-write-wins by commit order, and clients converge."""

import random
import threading
import uuid

from collab.domain import events, tasks
from collab.protocol.client_frames import TaskDraft


def test_concurrent_updates_converge_per_field_and_clients_agree_with_the_database(world):
    # Given one task and 8 writers, some on the same field (title), some on their own field
    wid = world.workspace("ann", *[f"w{i}" for i in range(8)])
    watcher = world.connect("ann", wid)
    base = tasks.create(
        world.rt.db,
        "ann",
        TaskDraft(title="start"),
        workspace_id=wid,
    )
    events.publish(world.rt, base.committed, world.rt.gateway_for(None))
    tid = base.task["id"]
    fields = {
        0: "title",
        1: "title",
        2: "title",
        3: "description",
        4: "status",
        5: "priority",
        6: "title",
        7: "description",
    }
    values = {
        "title": lambda i, n: f"title by w{i} #{n}",
        "description": lambda i, n: f"description by w{i} #{n}",
        "status": lambda i, n: ["todo", "in_progress", "done"][n % 3],
        "priority": lambda i, n: ["low", "medium", "high", "urgent"][n % 4],
    }
    committed = []  # (version, field, value), as acknowledged
    lock = threading.Lock()
    barrier = threading.Barrier(8)
    errors = []

    def writer(i):
        from collab.adapters.postgres.database import Database

        db = Database(world.rt.settings.dsn)
        barrier.wait()
        for n in range(15):
            field = fields[i]
            value = values[field](i, n)
            try:
                m = tasks.update(db, f"w{i}", tid, {field: value}, scope=wid)
            except Exception as exc:
                errors.append(exc)
                continue
            events.publish(world.rt, m.committed, world.rt.gateway_for(None))
            with lock:
                committed.append((m.task["version"], m.seq, field, value))
        db.close()

    # When they all write at once
    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []

    # Then versions are strictly increasing with commit order, seqs contiguous
    committed.sort()
    versions = [v for v, *_ in committed]
    assert versions == list(range(2, 2 + 8 * 15))
    seqs = sorted(s for _, s, *_ in committed)
    assert seqs == list(range(2, 2 + 8 * 15))
    # and each field holds its last committed write
    final = tasks.get(world.rt.db, "ann", tid)
    last = {}
    for _, _, field, value in committed:
        last[field] = value
    for field, value in last.items():
        assert final[field] == value, field
    assert final["version"] == versions[-1]

    # Clients receiving the events in random order and applying the version rule end equal to the DB
    received = [f["data"]["task"] for f in watcher.received("task.updated")]
    assert len(received) == 8 * 15
    for seed in range(20):
        order = received[:]
        random.Random(seed).shuffle(order)
        held = dict(base.task)
        for task in order:
            if task["version"] > held["version"]:
                held = task
        assert held == final


def test_concurrent_creates_with_one_client_chosen_id_create_once(world):
    wid = world.workspace("ann", "bob")
    a, b = world.connect("ann", wid), world.connect("bob", wid)
    tid = str(uuid.uuid4())
    replies = []

    def go(conn):
        replies.append(
            conn.send(
                {
                    "action": "task.create",
                    "request_id": str(uuid.uuid4()),
                    "task": {"id": tid, "title": "same"},
                }
            )["data"]
        )

    threads = [threading.Thread(target=go, args=(c,)) for c in (a, b, a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r["ok"] for r in replies) == [False, False, False, True]
    assert {r["error"]["code"] for r in replies if not r["ok"]} == {"conflict"}
    n = world.rt.db.run(lambda cur: cur.execute("SELECT count(*) AS n FROM activity").fetchone()["n"])
    assert n == 1


def test_a_duplicate_arriving_while_the_first_attempt_runs_gets_its_answer(world, monkeypatch):
    wid = world.workspace("ann", "bob")
    a = world.connect("ann", wid)
    rid = str(uuid.uuid4())
    frame = {"action": "task.create", "request_id": rid, "task": {"title": "slow"}}
    started, release = threading.Event(), threading.Event()
    real = tasks.create

    def slow_create(*args, **kwargs):
        started.set()
        release.wait(5)
        return real(*args, **kwargs)

    monkeypatch.setattr(tasks, "create", slow_create)
    first = {}
    t = threading.Thread(target=lambda: first.update(a.send(frame)["data"]))
    t.start()
    assert started.wait(5)
    second = {}
    t2 = threading.Thread(target=lambda: second.update(a.send(frame)["data"]))
    t2.start()
    release.set()
    t.join()
    t2.join()
    assert first["ok"] is True and second == first
    n = world.rt.db.run(lambda cur: cur.execute("SELECT count(*) AS n FROM tasks").fetchone()["n"])
    assert n == 1
