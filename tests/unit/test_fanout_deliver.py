"""How a broadcast is split (collab.domain.fanout.deliver), with a recording gateway and invoker:
the first 100 posted here, the rest in chunks of 100 handed to the fan-out function, what it refuses
posted here after all, and the metrics that say so."""

from __future__ import annotations

import base64
import types
from typing import Any

import pytest

from collab.adapters.awslambda.invoker import PayloadTooLarge
from collab.domain import fanout

ENDPOINT = "https://abc.execute-api.eu-west-1.amazonaws.com/prod"
TRACE = {"seq": 9, "type": "task.updated", "timestamp": "2026-12-05T00:00:00.000Z"}


class Gateway:
    endpoint = ENDPOINT

    def __init__(self) -> None:
        self.posted: list[tuple[list[str], bytes]] = []

    def broadcast(self, targets: list[str], payload: bytes) -> str:
        self.posted.append((list(targets), payload))
        return f"receipt of {len(targets)}"


class Invoker:
    def __init__(self, accept: list[bool] | None = None, exc: Exception | None = None) -> None:
        self.accept, self.exc = accept, exc
        self.events: list[dict[str, Any]] = []

    def invoke_async(self, events: list[dict[str, Any]]) -> list[bool]:
        self.events += events
        if self.exc is not None:
            raise self.exc
        return self.accept if self.accept is not None else [True] * len(events)


@pytest.fixture
def recorded(monkeypatch: Any) -> list[tuple[str, Any, float]]:
    out: list[tuple[str, Any, float]] = []
    monkeypatch.setattr(
        fanout,
        "metrics",
        types.SimpleNamespace(add_metric=lambda name, unit, value: out.append((name, unit, value))),
    )
    return out


def _deliver(
    invoker: Invoker | None, n: int, trace: dict[str, Any] | None = TRACE
) -> tuple[Any, Gateway, list[str]]:
    gateway, targets = Gateway(), [f"c{i:03d}" for i in range(n)]
    receipt, dispatched = fanout.deliver(
        types.SimpleNamespace(invoker=invoker), gateway, "w1", targets, b'{"type":"x"}', trace=trace
    )  # type: ignore[arg-type]
    return (receipt, dispatched), gateway, targets


@pytest.mark.parametrize("n", [0, 1, 100])
def test_up_to_100_targets_are_posted_here(recorded: list[Any], n: int) -> None:
    invoker = Invoker()
    (receipt, dispatched), gateway, targets = _deliver(invoker, n)
    assert (receipt, dispatched) == (f"receipt of {n}", [])
    assert gateway.posted == [(targets, b'{"type":"x"}')]
    assert invoker.events == [] and recorded == []


def test_without_a_fanout_function_everything_is_posted_here(recorded: list[Any]) -> None:
    (_, dispatched), gateway, targets = _deliver(None, 250)
    assert dispatched == [] and gateway.posted == [(targets, b'{"type":"x"}')]
    assert recorded == []


def test_the_rest_goes_in_chunks_of_100_each_carrying_the_frame_and_trace(recorded: list[Any]) -> None:
    invoker = Invoker()
    (_, dispatched), gateway, targets = _deliver(invoker, 301)
    assert gateway.posted == [(targets[:100], b'{"type":"x"}')]
    body = base64.b64encode(b'{"type":"x"}').decode()
    assert invoker.events == [
        {"kind": "collab.fanout", "workspace_id": "w1", "endpoint": ENDPOINT, "connections": chunk,
         "payload": body, "trace": TRACE}
        for chunk in (targets[100:200], targets[200:300], targets[300:])
    ]  # fmt: skip
    assert dispatched == targets[100:]
    assert [(name, value) for name, _, value in recorded] == [("FanoutInvocations", 3)]
    assert str(recorded[0][1]).endswith("Count")


def test_an_event_without_a_trace_says_so(recorded: list[Any]) -> None:
    invoker = Invoker()
    _deliver(invoker, 101, trace=None)
    assert [e["trace"] for e in invoker.events] == [None]
    assert invoker.events[0]["connections"] == ["c100"]


def test_chunks_the_function_refused_are_posted_here(recorded: list[Any]) -> None:
    invoker = Invoker(accept=[False, True, False])
    (_, dispatched), gateway, targets = _deliver(invoker, 350)
    assert gateway.posted == [(targets[:100] + targets[100:200] + targets[300:], b'{"type":"x"}')]
    assert dispatched == targets[200:300]
    assert [(name, value) for name, _, value in recorded] == [
        ("FanoutInvokeRefused", 150),
        ("FanoutInvocations", 1),
    ]
    assert all(str(unit).endswith("Count") for _, unit, _ in recorded)


@pytest.mark.parametrize("exc", [PayloadTooLarge("too large"), RuntimeError("no role"), OSError("reset")])
def test_when_invoking_fails_everything_is_posted_here(
    recorded: list[Any], exc: Exception, monkeypatch: Any
) -> None:
    warnings: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(
        fanout, "logger", types.SimpleNamespace(warning=lambda msg, extra: warnings.append((msg, extra)))
    )
    (_, dispatched), gateway, targets = _deliver(Invoker(exc=exc), 201)
    # operators see why the fan-out function was bypassed
    assert warnings == [("fan-out invocations not made; posting inline", {"reason": str(exc)})]
    assert dispatched == [] and gateway.posted == [(targets, b'{"type":"x"}')]
    assert [(name, value) for name, _, value in recorded] == [
        ("FanoutInvokeRefused", 101),
        ("FanoutInvocations", 0),
    ]


def test_an_unexpected_invoker_error_is_not_swallowed(recorded: list[Any]) -> None:
    with pytest.raises(ValueError):
        _deliver(Invoker(exc=ValueError("a bug")), 201)


def test_outcomes_name_each_connection_as_the_tracer_does() -> None:
    from collab.adapters.apigw.management import Receipt

    receipt = Receipt()
    for cid, outcome in (
        ("a", "delivered"),
        ("b", "gone"),
        ("c", "failed"),
        ("d", "throttled"),
        ("e", "delivered"),
    ):
        receipt.add(cid, outcome)
    # a throttled post is a failed one too (counted so): the tracer names it apart
    assert receipt.failed == ["c", "d"]
    assert fanout.outcomes(receipt) == {
        "a": "delivered",
        "e": "delivered",
        "b": "gone",
        "c": "failed",
        "d": "throttled",
    }


def test_an_invoker_that_answers_for_fewer_chunks_than_it_was_given_is_an_error(recorded: list[Any]) -> None:
    """Chunks it said nothing about would be neither posted here nor handed on: lost."""
    with pytest.raises(ValueError):
        _deliver(Invoker(accept=[True]), 301)
