"""The size of a sync reply, exactly: at most MAX_EVENTS events and the byte budget it is given (UTF-8, with commas), oldest first,
and never none while events are owed (a single event larger than the budget still goes, alone)."""

from __future__ import annotations

from typing import Any

from collab.domain.sync import MAX_BYTES, MAX_EVENTS, _cap
from collab.protocol.wire import dumps


def event(seq: int, size: int) -> dict[str, Any]:
    """An event whose serialised form is exactly ``size`` bytes."""
    ev: dict[str, Any] = {"seq": seq, "pad": ""}
    ev["pad"] = "p" * (size - len(dumps(ev)))
    assert len(dumps(ev)) == size
    return ev


def test_events_filling_the_byte_budget_exactly_all_go_and_one_byte_more_does_not():
    sizes = [1_000] * 97 + [MAX_BYTES - 97 * 1_000]
    exact = [event(i, s) for i, s in enumerate(sizes, 1)]
    budget = sum(len(dumps(e).encode()) + 1 for e in exact)  # each event and its comma, in bytes
    assert _cap(exact, budget) == (exact, budget)
    over = [*exact[:-1], event(98, sizes[-1] + 1)]
    assert _cap(over, budget)[0] == over[:-1]


def test_at_most_max_events_oldest_first():
    events = [event(i, 20) for i in range(1, MAX_EVENTS + 2)]
    assert _cap(events, MAX_BYTES)[0] == events[:MAX_EVENTS]


def test_an_event_larger_than_the_budget_still_goes_alone():
    big = event(1, MAX_BYTES + 10)
    assert _cap([big, event(2, 20)], MAX_BYTES)[0] == [big]
    assert _cap([], MAX_BYTES) == ([], 0)
