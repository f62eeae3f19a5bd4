"""The tracer's Lua script is registered once per Redis client, and each client's calls go through
its own registration: a script object carries the client it was registered on, so one shared
across clients would record into the wrong Redis."""

from __future__ import annotations

from typing import Any

from collab.adapters.redis import trace


class Client:
    """Enough of a redis-py client for :func:`trace.record`: ``register_script`` and the calls."""

    def __init__(self) -> None:
        self.registered = 0
        self.calls: list[dict[str, Any]] = []

    def register_script(self, source: str) -> Any:
        assert "redis.call" in source  # the tracer's script, read from trace.lua
        self.registered += 1

        def call(*, keys: list[str], args: list[Any]) -> None:
            self.calls.append({"keys": keys, "args": args})

        return call


def test_each_client_records_through_its_own_registration_made_once() -> None:
    first, second = Client(), Client()
    for seq, client in enumerate((first, second, first, second), start=1):
        trace.record(client, "w1", seq, "task.updated", "2026-12-04T12:00:00.000Z", {"c1": "delivered"})
    assert [c["args"][0] for c in first.calls] == [1, 3]
    assert [c["args"][0] for c in second.calls] == [2, 4]
    assert (first.registered, second.registered) == (1, 1)
    assert first.calls[0]["keys"] == ["collab:{w:w1}:conns", "collab:{w:w1}:trace", "collab:{w:w1}:removed"]
    assert first.calls[0]["args"] == [
        1,
        '{"c1": "delivered"}',
        "",
        100,
        "",
        "task.updated",
        "2026-12-04T12:00:00.000Z",
    ]
