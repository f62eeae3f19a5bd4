"""A fan-out to an endpoint that accepts TCP and never answers: the sender still gets its ``ack``,
with the change committed, before the invocation's time is up (Lambda would stop it at its timeout,
after the commit and before the ack: the sender would retry a change that was made)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from bench.tls_endpoint import Endpoint, make_ca
from collab.adapters import tls
from collab.adapters.apigw.management import ManagementApi
from collab_dev.permissions import call_as


class Budget:
    """A Lambda context with ``ms`` of remaining time."""

    function_name = "collab-message"
    memory_limit_in_mb = 1769
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:collab-message"
    aws_request_id = "00000000-0000-0000-0000-000000000001"

    def __init__(self, ms: int) -> None:
        self.end = time.monotonic() + ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.end - time.monotonic()) * 1000))


def test_task_create_to_40_peers_behind_a_hanging_endpoint_is_acked_within_the_budget(
    world: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    from functions.message.handler import handler

    ca = make_ca(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.ca_file))
    tls.reset()  # the container's trust store, built again with the local CA
    monkeypatch.setattr(tls, "_context", None)  # and forgotten after the test
    healthy, hanging = Endpoint(ca), Endpoint(ca, "hang")
    peers = [f"peer{i:02d}" for i in range(40)]
    wid = world.workspace("ann", *peers)
    try:
        # Given ann and 40 synced peers (the presence.joined posts go to a healthy TLS endpoint)
        world.rt._given["gateway"] = ManagementApi(healthy.url + "/prod")
        ann = world.connect("ann", wid)
        for p in peers:
            world.connect(p, wid)
        # When API Gateway accepts connections and never answers, and ann creates a task
        world.rt._given["gateway"] = ManagementApi(hanging.url + "/prod")
        frame = {
            "action": "task.create",
            "request_id": str(uuid.uuid4()),
            "task": {"title": "while API Gateway hangs", "assigned_to": "peer07"},
        }
        t0 = time.monotonic()
        out = call_as("message", handler, ann.event("message", json.dumps(frame)), Budget(4000))
        took = time.monotonic() - t0
    finally:
        hanging.close()
        healthy.close()
    ack = json.loads(out["body"])
    assert ack["type"] == "ack" and ack["data"]["ok"] is True
    assert took < 4.0, took  # answered before Lambda would have stopped it
    assert took > 3.0  # it did wait for the peers, as long as the budget allowed
    task_id = ack["data"]["task"]["id"]
    row = world.rt.db.run(
        lambda cur: cur.execute("SELECT title FROM tasks WHERE id = %s", (task_id,)).fetchone()
    )
    assert row["title"] == "while API Gateway hangs"  # committed
    # the assignee's notification was not delivered: it waits for peer07's next sync
    undelivered = world.rt.db.run(
        lambda cur: cur.execute(
            "SELECT count(*) AS n FROM notifications WHERE user_id = 'peer07' AND delivered_at IS NULL"
        ).fetchone()
    )
    assert undelivered["n"] == 1
    # a retry of the same request gets the same answer at once (the idempotency record was written)
    world.rt._given["gateway"] = None
    again = ann.send(frame)
    assert again is not None and again["data"] == ack["data"]
