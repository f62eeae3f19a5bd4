"""A Redis of our own with a small ``maxmemory``, filled by an attacker (issue 13).

ElastiCache's default policy, volatile-lru, evicts exactly the keys with an expiry: used tickets,
rate windows, idempotency records, connections. The stack sets ``noeviction`` (writes then fail
with OOM); both are run here. Either way: no used ticket reopens, no request applies twice, and
every client gets an answer (a contract error), never an exception.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def small_redis(tmp_path: Path, request: Any) -> Any:
    port = _free_port()
    proc = subprocess.Popen(
        [
            "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(tmp_path), "--maxmemory", "3mb", "--maxmemory-policy", request.param,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.exceptions.ConnectionError:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    yield f"redis://127.0.0.1:{port}/0", client
    client.close()
    proc.terminate()
    proc.wait(10)


def _fill(client: Any) -> None:
    """The attack: fill memory (with keys that expire, then with keys that do not) until Redis refuses."""
    blob = "x" * 50_000
    for i in range(2000):
        try:
            client.set(f"attack:{i}", blob, ex=3600 if i % 2 else None)
        except redis.exceptions.ResponseError:  # OOM: full
            return
    raise AssertionError("never filled")


@pytest.mark.parametrize("small_redis", ["volatile-lru", "noeviction"], indirect=True)
def test_a_full_redis_reopens_no_ticket_applies_no_request_twice_and_answers_everyone(world, small_redis):
    from collab import runtime

    url, client = small_redis
    rt = runtime.Runtime(world.rt.settings.model_copy(update={"redis_url": url}), clock=world.rt.clock)
    runtime.install(rt)
    world.rt = rt
    wid = world.workspace("ann", "bob")
    a = world.connect("ann", wid)
    task = a.create("t")["data"]["task"]
    ticket = world.ticket("bob", wid)
    assert world.connect_raw(ticket, "bob0000000001=")["statusCode"] == 200
    assert (
        world.attach("bob0000000001=", "bob", wid).send({"action": "sync", "since": None})["type"] == "sync"
    )
    frame = {
        "action": "task.update",
        "request_id": str(uuid.uuid4()),
        "task_id": task["id"],
        "changes": {"title": "A"},
    }
    first = a.send(frame)
    assert first["data"]["ok"] is True

    _fill(client)

    # every frame is answered with a contract error or its real answer, nothing raises
    for f in (
        frame,
        {"action": "sync", "since": 0},
        {"action": "task.create", "request_id": str(uuid.uuid4()), "task": {"title": "x"}},
    ):
        reply = a.send(f)
        assert reply is not None and reply["type"] in ("ack", "sync", "error")
        if reply["type"] == "ack" and reply["data"]["request_id"] == frame["request_id"]:
            assert reply["data"] == first["data"] or reply["data"]["error"]["code"] in (
                "internal",
                "unauthorized",
            )
    assert a.heartbeat()["type"] in ("heartbeat.ack", "error")

    # the used ticket serves no second connection. An evicting Redis may have dropped the ticket's
    # record: $connect then accepts it, and its first frame finds the ticket spent in Postgres
    # (collab.domain.admission), or cannot be served while Redis is full: either way it gets nothing.
    def replay(cid: str, statuses: tuple[int, ...]) -> None:
        out = world.connect_raw(ticket, cid)
        if out["statusCode"] != 200:
            assert out["statusCode"] in statuses and json.loads(out["body"])["error"]
            return
        refused = world.attach(cid, "bob", wid).send({"action": "sync", "since": None})
        assert refused is not None and refused["type"] == "error", refused
        assert refused["data"]["code"] in ("unauthorized", "unavailable"), refused

    replay("replay0000001=", (401, 503))
    # Redis gets room again (the operator raised maxmemory, the attacker's keys were deleted)
    client.config_set("maxmemory", "64mb")
    replay("replay0000002=", (401,))
    again = world.connect("ann", wid).send(frame)
    assert again["data"] == first["data"]
    n = rt.db.run(
        lambda cur: cur.execute(
            "SELECT count(*) AS n FROM activity WHERE workspace_id = %s", (wid,)
        ).fetchone()
    )
    assert n["n"] <= 3  # create, A, and at most the one create sent during the attack
    titles = rt.db.run(
        lambda cur: cur.execute("SELECT title FROM tasks WHERE id = %s", (task["id"],)).fetchone()
    )
    assert titles["title"] == "A"
    runtime.install(None)
    rt.db.close()


def test_history_is_bounded_in_bytes_and_expires(world):
    from collab.adapters.redis import keys

    wid = world.workspace("ann")
    a = world.connect("ann", wid)
    big = a.create("big", description="d" * 9000)["data"]
    small = a.create("small")["data"]
    hist = world.rt.store.history(wid, 0)
    assert [seq for seq, _ in hist] == [small["seq"]]  # the big event stays in Postgres only
    assert world.rt.store.r.pttl(keys.ws(wid, "history")) > 0
    reply = world.connect("ann", wid, sync=False).send({"action": "sync", "since": 0})
    assert [e["seq"] for e in reply["data"]["events"]] == [big["seq"], small["seq"]]
