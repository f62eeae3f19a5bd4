"""A fan-out to more than 100 connections is split across asynchronous invocations of the fan-out
function (issue 15): the invocation that made the event posts 100 itself, each chunk's invocation
at most 100 more, every peer gets the event once, and the delivery tracer merges the outcomes
whichever invocation records first. The invoker here runs ``functions/fanout`` in-process, at the
moment the real one would queue it (before the inline posts); the real Invoke API, through the
local gateway, is tested in tests/e2e/test_large_workspace.py."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from collab.adapters.awslambda.invoker import PAYLOAD_LIMIT, PayloadTooLarge
from collab.adapters.redis import trace
from collab.adapters.redis.store import ConnInfo
from collab_dev.permissions import call_as


class InProcessInvoker:
    """Lambda's asynchronous Invoke, run at once in this process as the fan-out function."""

    def __init__(self, world: Any, *, refuse: int = 0) -> None:
        self.world, self.refuse = world, refuse
        self.events: list[dict[str, Any]] = []

    def invoke_async(self, events: list[dict[str, Any]]) -> list[bool]:
        from functions.fanout.handler import handler

        bodies = [json.dumps(e, separators=(",", ":")).encode() for e in events]
        if any(len(b) > PAYLOAD_LIMIT for b in bodies):
            raise PayloadTooLarge("too large")
        out = []
        for event in events:
            if self.refuse:  # throttled by Lambda (after the retries): the caller posts it itself
                self.refuse -= 1
                out.append(False)
                continue
            self.events.append(event)
            call_as("fanout", handler, json.loads(json.dumps(event)), self.world.context)
            out.append(True)
        return out


def announced_peers(world: Any, wid: str, n: int) -> list[str]:
    """n announced connections of members of ``wid``, registered straight in Redis (set-up)."""
    store, now = world.rt.store, world.rt.clock.now_ms()
    uids = [f"peer{i:03d}" for i in range(n)]

    def setup(cur: Any) -> None:
        cur.executemany("INSERT INTO users (id, display_name) VALUES (%s, %s)", [(u, u) for u in uids])
        cur.executemany(
            "INSERT INTO workspace_members (workspace_id, user_id, role) VALUES (%s, %s, 'member')",
            [(wid, u) for u in uids],
        )

    world.rt.db.run(setup)
    cids = []
    for uid in uids:
        info = ConnInfo(f"{uuid.uuid4().hex[:15]}=", wid, uid, uid, now)
        assert store.register(info, now) is None
        store.announce(info, {"display_name": uid, "status": "active", "viewing": None, "last_seen_ms": now})
        cids.append(info.connection_id)
    return cids


@pytest.fixture
def large(world: Any, monkeypatch: Any) -> tuple[Any, Any, list[str], InProcessInvoker]:
    from collab.config import Limits

    monkeypatch.setattr(
        world.rt,
        "settings",
        world.rt.settings.model_copy(update={"limits": Limits(members_per_workspace=300)}),
    )
    wid = world.workspace("ann")
    peers = announced_peers(world, wid, 249)
    ann = world.connect("ann", wid)
    invoker = InProcessInvoker(world)
    world.rt._given["invoker"] = invoker
    world.rt.__dict__.pop("invoker", None)
    return world, ann, peers, invoker


def test_an_edit_to_249_peers_goes_out_in_chunks_of_at_most_100(large: Any) -> None:
    world, ann, peers, invoker = large
    task = ann.create("big room")["data"]["task"]
    world.sink.reset()
    ack = ann.update(task["id"], title="renamed")
    seq = ack["data"]["seq"]
    # Then: two chunks were invoked (149 past the first 100: 100 + 49), each within the payload limit
    assert [len(e["connections"]) for e in invoker.events[-2:]] == [100, 49]
    assert all(len(json.dumps(e)) <= PAYLOAD_LIMIT for e in invoker.events)
    handed = {c for e in invoker.events[-2:] for c in e["connections"]}
    assert len(handed) == 149 and ann.cid not in handed
    # every peer got the event exactly once, the actor none (it got the ack)
    got = [c for c, f in world.sink.all("task.updated") if f["seq"] == seq]
    assert sorted(got) == sorted(peers)
    # the tracer holds one record with every connection's outcome, chunks merged in
    [record], _ = trace.traces(world.rt.store.r, ann.wid, seq)
    outcomes = {c: o for c, _, o in record["connections"]}
    assert outcomes[ann.cid] == "sender"
    assert {o for c, o in outcomes.items() if c != ann.cid} == {"delivered"}
    assert len(outcomes) == 250


def test_a_refused_invocation_is_posted_inline(large: Any) -> None:
    world, ann, peers, invoker = large
    task = ann.create("big room")["data"]["task"]
    invoker.refuse = 1
    world.sink.reset()
    seq = ann.update(task["id"], title="renamed")["data"]["seq"]
    assert [len(e["connections"]) for e in invoker.events[-1:]] == [49]
    got = [c for c, f in world.sink.all("task.updated") if f["seq"] == seq]
    assert sorted(got) == sorted(peers)


def test_a_chunk_prunes_the_gone_connections_it_finds(large: Any) -> None:
    world, ann, peers, _ = large
    task = ann.create("big room")["data"]["task"]
    dead = set(peers[-3:])  # in the last chunk
    world.sink.gone |= dead
    seq = ann.update(task["id"], title="renamed")["data"]["seq"]
    assert dead.isdisjoint(world.rt.store.fanout_targets(ann.wid))
    [record], _ = trace.traces(world.rt.store.r, ann.wid, seq)
    assert {c: o for c, _, o in record["connections"] if c in dead} == dict.fromkeys(dead, "gone")


def test_without_a_fanout_function_everything_is_posted_inline(world: Any) -> None:
    wid = world.workspace("ann")
    peers = announced_peers(world, wid, 120)
    ann = world.connect("ann", wid)
    assert world.rt.invoker is None
    task = ann.create("big room")["data"]["task"]
    seq = ann.update(task["id"], title="renamed")["data"]["seq"]
    got = [c for c, f in world.sink.all("task.updated") if f["seq"] == seq]
    assert sorted(got) == sorted(peers)


def test_a_chunk_event_carries_a_128_kb_frame_within_the_payload_limit() -> None:
    """The largest frame API Gateway takes, 100 connection ids: base64 keeps it under 256 KB."""
    import base64

    from collab.domain.fanout import CHUNK, KIND

    frame = ("\U0001f600" * (128 * 1024 // 4)).encode()
    event = {"kind": KIND, "workspace_id": str(uuid.uuid4()), "endpoint": "https://x.execute-api.us-east-1.amazonaws.com/prod",
             "connections": [f"{uuid.uuid4().hex[:15]}=" for _ in range(CHUNK)], "payload": base64.b64encode(frame).decode(),
             "trace": {"seq": 10**12, "type": "task.updated", "timestamp": "2026-12-04T00:00:00.000Z"}}  # fmt: skip
    assert len(json.dumps(event, separators=(",", ":"))) <= PAYLOAD_LIMIT


def test_a_chunk_posts_at_most_100_prunes_the_gone_meters_one_invocation_and_counts_outcomes(
    world: Any,
) -> None:
    import base64

    from collab.domain import usage
    from collab.domain.fanout import KIND
    from functions.fanout.handler import handler

    wid = world.workspace("ann")
    peers = announced_peers(world, wid, 103)
    world.sink.gone |= set(peers[:2])
    usage.flush(world.rt, check_budget=False)
    frame = {"type": "task.updated", "seq": 1, "data": {}}
    stage = world.rt.settings.connections_endpoint  # the stage whose function made the event
    event = {"kind": KIND, "workspace_id": wid, "endpoint": stage, "connections": peers,
             "payload": base64.b64encode(json.dumps(frame).encode()).decode(),
             "trace": {"seq": 7, "type": "task.updated", "timestamp": "2026-12-04T10:00:00.000Z"}}  # fmt: skip
    world.sink.reset()
    world.sink.gone |= set(peers[:2])
    endpoints: list[Any] = []
    gateway_for = world.rt.gateway_for
    world.rt.gateway_for = lambda endpoint: endpoints.append(endpoint) or gateway_for(endpoint)
    began = time.perf_counter()
    counts = call_as("fanout", handler, event, world.context)
    wall_ms = (time.perf_counter() - began) * 1000
    assert endpoints == [stage]
    [record], _ = trace.traces(world.rt.store.r, wid, 7)
    assert (record["type"], record["timestamp"]) == ("task.updated", "2026-12-04T10:00:00.000Z")
    assert {c: o for c, _, o in record["connections"] if c in peers[:100]} == {
        **dict.fromkeys(peers[:2], "gone"),
        **dict.fromkeys(peers[2:100], "delivered"),
    }
    assert counts == {"delivered": 98, "gone": 2, "failed": 0}
    assert sorted(world.sink.attempts) == sorted(peers[:100])  # a chunk never posts past 100
    assert set(peers[:2]).isdisjoint(world.rt.store.fanout_targets(wid))
    assert set(peers[100:]) <= set(world.rt.store.fanout_targets(wid))  # not its to judge
    usage.flush(world.rt, check_budget=False)
    used = usage.report(world.rt, wid)
    # metered in milliseconds of this invocation: 100 posts over HTTP take more than one
    assert used["invocations"] == 1 and 1 <= used["handler_ms"] <= wall_ms
    totals = usage._totals(world.rt, wid, usage.month_of(world.rt.clock.utcnow()))
    assert totals["gb_ms"] == pytest.approx(totals["handler_ms"] * world.context.memory_limit_in_mb / 1024)
    with pytest.raises(ValueError, match=r"^not a fan-out chunk$"):
        call_as("fanout", handler, {**event, "kind": "something else"}, world.context)


class FailingInvoker:
    def __init__(self, exc: Exception | None = None, accept: list[bool] | None = None) -> None:
        self.exc, self.accept = exc, accept

    def invoke_async(self, events: list[dict[str, Any]]) -> list[bool]:
        if self.exc is not None:
            raise self.exc
        assert self.accept is not None
        return self.accept[: len(events)]


@pytest.mark.parametrize("exc", [PayloadTooLarge("too large"), RuntimeError("no role"), OSError("reset")])
def test_when_invoking_fails_every_chunk_is_posted_inline_and_counted(world: Any, exc: Exception) -> None:
    from collab.domain import fanout
    from collab.observability import metrics

    wid = world.workspace("ann")
    peers = announced_peers(world, wid, 230)
    world.rt._given["invoker"] = FailingInvoker(exc)
    world.rt.__dict__.pop("invoker", None)
    metrics.clear_metrics()
    receipt, dispatched = fanout.deliver(world.rt, world.rt.gateway_for(None), wid, peers, b'{"type":"x"}')
    assert dispatched == [] and sorted(receipt.delivered) == sorted(peers)
    assert metrics.metric_set["FanoutInvokeRefused"]["Value"] == [130.0]
    assert metrics.metric_set["FanoutInvocations"]["Value"] == [0.0]
    metrics.clear_metrics()


def test_what_was_handed_on_is_returned_and_what_was_refused_is_posted_here(world: Any) -> None:
    from collab.domain import fanout
    from collab.observability import metrics

    wid = world.workspace("ann")
    peers = announced_peers(world, wid, 330)  # 100 here, then chunks of 100, 100 and 30
    world.rt._given["invoker"] = FailingInvoker(accept=[True, False, True])
    world.rt.__dict__.pop("invoker", None)
    metrics.clear_metrics()
    receipt, dispatched = fanout.deliver(world.rt, world.rt.gateway_for(None), wid, peers, b'{"type":"x"}')
    assert dispatched == peers[100:200] + peers[300:]
    assert sorted(receipt.delivered) == sorted(peers[:100] + peers[200:300])
    assert metrics.metric_set["FanoutInvokeRefused"]["Value"] == [100.0]
    assert metrics.metric_set["FanoutInvocations"]["Value"] == [2.0]
    metrics.clear_metrics()


def test_connections_handed_to_an_invocation_not_yet_run_are_traced_as_dispatched(large: Any) -> None:
    """Lambda accepted the chunks but the fan-out function has not run (or never will): the trace
    says where those connections' copies went, not that they were never targets."""
    world, ann, _peers, _ = large
    pending: list[dict[str, Any]] = []

    class Accepted:
        def invoke_async(self, events: list[dict[str, Any]]) -> list[bool]:
            pending.extend(events)
            return [True] * len(events)

    world.rt._given["invoker"] = Accepted()
    world.rt.__dict__.pop("invoker", None)
    seq = ann.create("big room")["data"]["seq"]
    [record], _ = trace.traces(world.rt.store.r, ann.wid, seq)
    outcomes = {c: o for c, _, o in record["connections"]}
    handed = {c for e in pending for c in e["connections"]}
    assert len(handed) == 149 and {outcomes[c] for c in handed} == {"dispatched"}
    assert {o for c, o in outcomes.items() if c not in handed and c != ann.cid} == {"delivered"}


def _one_peer_chunk(world: Any, **extra: Any) -> tuple[str, dict[str, Any]]:
    """A workspace with one announced peer, and a chunk event for it (``extra``: more fields)."""
    import base64

    from collab.domain.fanout import KIND

    wid = world.workspace("ann")
    [peer] = announced_peers(world, wid, 1)
    return wid, {"kind": KIND, "workspace_id": wid, "endpoint": world.rt.settings.connections_endpoint,
                 "connections": [peer], "payload": base64.b64encode(b'{"type":"x"}').decode(), **extra}  # fmt: skip


def test_a_chunk_meters_its_own_milliseconds_and_gb_ms(world: Any, monkeypatch: Any) -> None:
    """The invocation's time is measured on the monotonic clock from its start to its end: with a
    clock that says 250 ms passed, 250 ms and 250 x memory / 1024 GB-ms are metered."""
    import types

    from collab.domain import fanout, usage

    wid, event = _one_peer_chunk(world)
    usage.flush(world.rt, check_budget=False)
    ticks = iter([100.0, 100.25])
    monkeypatch.setattr(fanout, "time", types.SimpleNamespace(perf_counter=lambda: next(ticks)))
    assert fanout.handle(world.rt, event, memory_mb=2048) == {"delivered": 1, "gone": 0, "failed": 0}
    usage.flush(world.rt, check_budget=False)
    totals = usage._totals(world.rt, wid, usage.month_of(world.rt.clock.utcnow()))
    assert (totals["invocations"], totals["handler_ms"], totals["gb_ms"]) == (1, 250, 500)


def test_a_chunk_whose_tracing_fails_logs_it_and_still_posts(world: Any, monkeypatch: Any) -> None:
    import types

    from collab.adapters.redis import trace as traces
    from collab.domain import fanout

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("redis said no")

    warnings: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(traces, "record", broken)
    monkeypatch.setattr(
        fanout, "logger", types.SimpleNamespace(warning=lambda m, extra: warnings.append((m, extra)))
    )
    wid, event = _one_peer_chunk(
        world, trace={"seq": 3, "type": "task.updated", "timestamp": "2026-12-05T00:00:00.000Z"}
    )
    assert fanout.handle(world.rt, event, memory_mb=1024) == {"delivered": 1, "gone": 0, "failed": 0}
    assert warnings == [("tracing a fan-out chunk failed", {"workspace_id": wid})]
