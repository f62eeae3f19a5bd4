"""Webhooks end to end: the real handlers, Postgres, Redis, moto's SQS in server mode (FIFO queue
with a dead-letter queue) and a receiver on loopback. Every request the receiver accepts is checked
with the Standard Webhooks reference implementation (``standardwebhooks``)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from standardwebhooks import Webhook
from test_http_helpers import Api, LambdaContext, load_handler

from collab_dev.webhook_poller import drain
from tests.support.webhook_receiver import Receiver

webhooks_handler = load_handler("webhooks").handler


class Hooks:
    """The world with a webhook queue, a receiver and the HTTP API."""

    def __init__(self, world: Any, api: Api, receiver: Receiver, dlq_url: str) -> None:
        self.world, self.api, self.receiver, self.dlq_url = world, api, receiver, dlq_url
        self.rt = world.rt

    def drain(self) -> int:
        return drain(self.rt.queue, lambda event: webhooks_handler(event, LambdaContext()))

    def tick(self) -> dict[str, Any]:
        return webhooks_handler({"source": "aws.events", "detail-type": "Scheduled Event"}, LambdaContext())

    def register(self, wid: str, user: str = "alice", **body: Any) -> dict[str, Any]:
        return dict(
            self.api.ok("POST", f"/workspaces/{wid}/webhooks", user, {"url": self.receiver.url, **body})
        )

    def hook(self, wid: str, hid: str) -> dict[str, Any]:
        items = self.api.ok("GET", f"/workspaces/{wid}/webhooks", "alice")["items"]
        return next(h for h in items if h["id"] == hid)

    def verified(self, secret: str) -> list[dict[str, Any]]:
        """Every accepted request, verified by the reference implementation, as (id, payload)."""
        wh = Webhook(secret)
        out = []
        for headers, body in self.receiver.received:
            payload = wh.verify(body, headers)  # raises WebhookVerificationError on a bad signature
            out.append({"id": headers["webhook-id"], **payload})
        return out


@pytest.fixture
def hooks(world: Any, moto_endpoint: str) -> Iterator[Hooks]:
    import boto3

    from collab import runtime

    sqs = boto3.client("sqs", endpoint_url=moto_endpoint, region_name="us-east-1")
    name = uuid.uuid4().hex[:12]
    dlq_url = sqs.create_queue(QueueName=f"dlq-{name}.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = sqs.create_queue(
        QueueName=f"hooks-{name}.fifo",
        Attributes={
            "FifoQueue": "true",
            "VisibilityTimeout": "2",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}),
        },
    )["QueueUrl"]
    settings = world.rt.settings.model_copy(
        update={
            "webhook_queue_url": queue_url,
            "sqs_endpoint_url": moto_endpoint,
            "webhook_allow_loopback": True,
            "webhook_timeout_s": 1.0,
        }
    )
    old = world.rt
    rt = runtime.Runtime(settings, clock=old.clock)
    runtime.install(rt)
    world.rt = rt
    receiver = Receiver()
    try:
        yield Hooks(world, Api(settings), receiver, dlq_url)
    finally:
        receiver.close()
        world.rt = old
        runtime.install(old)
        if "db" in rt.__dict__:
            rt.db.close()


def scripted_session(hooks: Hooks, wid: str) -> None:
    """Tasks created, edited and deleted over WebSocket by two members; a member added and removed."""
    w = hooks.world
    alice, bob = w.connect("alice", wid), w.connect("bob", wid)
    a = alice.create("Plan")["data"]["task"]
    b = alice.create("Build")["data"]["task"]
    bob.update(a["id"], status="in_progress")
    alice.update(b["id"], title="Build it")
    alice.send({"action": "task.delete", "request_id": str(uuid.uuid4()), "task_id": b["id"]})
    hooks.api.ok("GET", "/workspaces", "carol")
    hooks.api.ok("POST", f"/workspaces/{wid}/members", "alice", {"user_id": "carol"})
    hooks.api.ok("DELETE", f"/workspaces/{wid}/members/carol", "alice")


def last_seq(hooks: Hooks, wid: str) -> int:
    return int(
        hooks.rt.db.run(
            lambda cur: cur.execute("SELECT last_seq FROM workspaces WHERE id = %s", (wid,)).fetchone()
        )["last_seq"]
    )


def test_receiver_gets_every_event_in_order_signed_and_survives_an_outage(hooks: Hooks) -> None:
    # Given a workspace with a webhook registered by its owner (the secret is shown once)
    wid = hooks.world.workspace("alice", "bob")
    hooks.world.user("carol")
    created = hooks.register(wid)
    secret = created["secret"]
    assert secret.startswith("whsec_") and created["delivered_seq"] == 0
    assert "secret" not in hooks.hook(wid, created["id"])

    # When a scripted session runs and the queue is drained (Lambda's event source)
    scripted_session(hooks, wid)
    assert hooks.drain() > 0

    # Then the receiver got every event, in seq order, each verified by the reference check
    got = hooks.verified(secret)
    top = last_seq(hooks, wid)
    assert [e["data"]["seq"] for e in got] == list(range(1, top + 1))
    assert [e["type"] for e in got] == [
        "task.created", "task.created", "task.updated", "task.updated", "task.deleted",
        "member.added", "member.removed",
    ]  # fmt: skip
    assert len({e["id"] for e in got}) == len(got)
    assert all(e["data"]["workspace_id"] == wid for e in got)

    # When the receiver is down while three more events happen
    hooks.receiver.mode = "down"
    alice = hooks.world.connect("alice", wid)
    for title in ("one", "two", "three"):
        alice.create(title)
    hooks.drain()
    # Then the first of them failed, the others wait behind it, and a retry is scheduled (5 s)
    hook = hooks.hook(wid, created["id"])
    assert hook["status"] == "failing" and hook["delivered_seq"] == top and hook["attempts"] == 1
    attempts = hooks.receiver.attempts
    assert attempts == len(got) + 1

    # When time passes: the minute tick retries when due, with backoff, while it is still down
    hooks.tick()
    hooks.drain()
    assert hooks.receiver.attempts == attempts  # not due yet: nothing sent
    hooks.world.rt.clock.advance(6)
    hooks.tick()
    hooks.drain()
    assert hooks.receiver.attempts == attempts + 1
    assert hooks.hook(wid, created["id"])["attempts"] == 2  # next in 5 minutes

    # When it is up again and the next retry is due
    hooks.receiver.mode = "up"
    hooks.world.rt.clock.advance(301)
    hooks.tick()
    hooks.drain()

    # Then the gap is delivered in order, nothing twice, and the endpoint is healthy again
    got = hooks.verified(secret)
    end = last_seq(hooks, wid)
    assert [e["data"]["seq"] for e in got] == list(range(1, end + 1))
    hook = hooks.hook(wid, created["id"])
    assert hook["status"] == "active" and hook["delivered_seq"] == end and hook["attempts"] == 0
    log = hooks.api.ok("GET", f"/workspaces/{wid}/webhooks/{created['id']}/deliveries", "alice")["items"]
    assert [a["outcome"] for a in log[:4]] == ["delivered", "delivered", "delivered", "failed"]

    # When the admin asks for the range the receiver lost to be sent again
    first_ids = {e["data"]["seq"]: e["id"] for e in got}
    hooks.receiver.received.clear()
    out = hooks.api.ok(
        "POST", f"/workspaces/{wid}/webhooks/{created['id']}/redeliveries", "alice",
        {"from_seq": top + 1, "to_seq": end},
    )  # fmt: skip
    assert out["status"] == "queued"
    hooks.drain()

    # Then exactly that range arrives again, in order, signed, under the same webhook-ids
    again = hooks.verified(secret)
    assert [e["data"]["seq"] for e in again] == list(range(top + 1, end + 1))
    assert all(first_ids[e["data"]["seq"]] == e["id"] for e in again)


def test_event_types_filter_and_a_lost_message_is_caught_up_by_the_tick(hooks: Hooks) -> None:
    wid = hooks.world.workspace("alice", "bob")
    hook = hooks.register(wid, event_types=["task.deleted"])
    alice = hooks.world.connect("alice", wid)
    t = alice.create("x")["data"]["task"]
    alice.send({"action": "task.delete", "request_id": str(uuid.uuid4()), "task_id": t["id"]})
    # the queue loses everything (purged): the minute tick still finds the endpoint behind
    hooks.rt.queue.client.purge_queue(QueueUrl=hooks.rt.queue.url)
    hooks.tick()
    hooks.drain()
    got = hooks.verified(hook["secret"])
    assert [e["type"] for e in got] == ["task.deleted"]
    assert hooks.hook(wid, hook["id"])["delivered_seq"] == 2


def test_failing_for_24_hours_disables_the_endpoint_and_tells_the_admins(hooks: Hooks) -> None:
    wid = hooks.world.workspace("alice", "bob", "erin")
    hooks.rt.db.run(
        lambda cur: cur.execute(
            "UPDATE workspace_members SET role = 'admin' WHERE workspace_id = %s AND user_id = 'erin'", (wid,)
        )
    )
    hook = hooks.register(wid)
    hooks.receiver.mode = "down"
    hooks.world.connect("alice", wid).create("x")
    hooks.drain()
    for _ in range(12):  # 5 s, 5 min, 30 min, 2 h, 5 h, then every 10 h: 24 h is passed on the 7th try
        hooks.world.rt.clock.advance(10 * 3600 + 1)
        hooks.tick()
        hooks.drain()
        if hooks.hook(wid, hook["id"])["status"] == "disabled":
            break
    state = hooks.hook(wid, hook["id"])
    assert state["status"] == "disabled" and state["last_error"] == "HTTP 500"
    told = hooks.rt.db.run(
        lambda cur: cur.execute(
            "SELECT user_id, payload FROM notifications WHERE type = 'webhook.disabled' ORDER BY user_id"
        ).fetchall()
    )
    assert [r["user_id"] for r in told] == ["alice", "erin"]  # owner and admin, not bob
    assert told[0]["payload"]["webhook_id"] == hook["id"]
    attempts = hooks.receiver.attempts
    hooks.world.rt.clock.advance(36000)
    hooks.tick()
    hooks.drain()
    assert hooks.receiver.attempts == attempts  # disabled: never tried again


def test_a_receiver_that_hangs_is_a_failure_after_the_timeout(hooks: Hooks) -> None:
    wid = hooks.world.workspace("alice")
    hook = hooks.register(wid)
    hooks.receiver.mode = "hang"
    hooks.world.connect("alice", wid).create("x")
    started = time.monotonic()
    hooks.drain()
    assert time.monotonic() - started < 10
    state = hooks.hook(wid, hook["id"])
    assert state["status"] == "failing" and "timed out" in (state["last_error"] or "")


def test_a_message_that_fails_goes_back_to_the_queue_with_those_after_it(
    hooks: Hooks, monkeypatch: Any
) -> None:
    from collab.domain import webhooks

    calls: list[dict[str, Any]] = []

    def boom(rt: Any, message: dict[str, Any]) -> None:
        calls.append(message)
        if len(calls) == 1:
            raise RuntimeError("database down")

    monkeypatch.setattr(webhooks, "handle_message", boom)
    records = [{"messageId": str(i), "body": json.dumps({"workspace_id": "w", "seq": i})} for i in range(3)]
    out = webhooks_handler({"Records": records}, LambdaContext())
    assert out == {
        "batchItemFailures": [{"itemIdentifier": "0"}, {"itemIdentifier": "1"}, {"itemIdentifier": "2"}]
    }
    assert len(calls) == 1


def test_presence_leaves_are_debounced_so_a_reload_is_not_a_leave(hooks: Hooks) -> None:
    # Given an endpoint that asked for presence (opt-in: "every type" means the seq events)
    wid = hooks.world.workspace("alice", "bob")
    hook = hooks.register(wid, event_types=["presence.joined", "presence.left"])
    # When bob comes online: the join goes out at once
    bob = hooks.world.connect("bob", wid)
    hooks.drain()
    assert [(e["type"], e["data"]["user_id"]) for e in hooks.verified(hook["secret"])] == [
        ("presence.joined", "bob")
    ]
    # When bob reloads the tab (leaves, and is back within seconds): nothing is sent, even later
    bob.disconnect()
    bob = hooks.world.connect("bob", wid)
    hooks.world.rt.clock.advance(31)
    hooks.tick()
    hooks.drain()
    assert len(hooks.receiver.received) == 1
    # When bob really leaves: the leave goes out once the 30 s window has passed, signed
    bob.disconnect()
    hooks.tick()
    hooks.drain()
    assert len(hooks.receiver.received) == 1  # not yet
    hooks.world.rt.clock.advance(31)
    hooks.tick()
    hooks.drain()
    got = hooks.verified(hook["secret"])
    assert [(e["type"], e["data"]["data"]["status"]) for e in got] == [
        ("presence.joined", "active"),
        ("presence.left", "away"),
    ]
    assert got[1]["id"].startswith("prs_")
    # presence events carry no seq: the endpoint's cursor of seq events did not move
    assert hooks.hook(wid, hook["id"])["delivered_seq"] == 0
