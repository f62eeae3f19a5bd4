"""The sweeper at scale (issue 15): a sweep's Redis work grows with the connections that are overdue
and with recent revocations, not with every live connection. Counted on the wire (commands and the
keys they name), never timed; ``python -m bench.sweeper_scale`` times it with 100,000."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.connections_bulk import register_many
from tests.support.redis_wire import counting


def _measure(world: Any, total: int, overdue: int) -> tuple[dict[str, Any], Any]:
    store, now = world.rt.store, world.rt.clock.now_ms()
    layout = register_many(
        store, total=total, per_workspace=50, overdue=overdue, now_ms=now, overdue_workspaces=5
    )
    with counting() as wire:
        out = world.sweep()
    left = {(w, c) for w, c in layout.overdue if store.connection(c) is not None}
    assert left == set(), "every overdue connection is swept"
    assert store.r.zcard("collab:sweep") == total - overdue
    return out, wire


@pytest.fixture
def warm(world: Any) -> Any:
    world.sweep()  # clients connected, scripts loaded
    return world


def test_a_sweep_costs_the_same_with_ten_times_the_live_connections(warm: Any) -> None:
    """Given 2,000 then 20,000 registered connections, 20 of them overdue in 5 workspaces both
    times, when the sweeper runs, then it sends the same commands naming the same number of keys."""
    small_out, small = _measure(warm, 2_000, 20)
    warm.rt.store.r.flushdb()
    warm.sweep()
    large_out, large = _measure(warm, 20_000, 20)
    assert small_out["removed"] == large_out["removed"] == 20
    assert large.commands == small.commands and large.by_command == small.by_command
    assert len(large.keys) == len(small.keys)
    # nothing reads the whole index or every workspace's registry any more; the one hash read per
    # workspace with overdue connections is its editing indicators (v1.3: a swept connection's go)
    assert "ZSCAN" not in large.by_command and large.by_command.get("HGETALL", 0) <= 5


def test_a_sweep_grows_with_the_overdue_ones(warm: Any) -> None:
    """Twice the overdue connections (in the same workspaces): more keys touched, each one of an
    overdue connection or of its workspace; the live ones are not visited."""
    _, few = _measure(warm, 5_000, 20)
    warm.rt.store.r.flushdb()
    warm.sweep()
    _, more = _measure(warm, 5_000, 40)
    per_conn = (len(more.keys) - len(few.keys)) / 20
    # each further overdue connection: its record, its user's index, nothing of anyone else's
    assert 1 <= per_conn <= 3
    assert len(more.keys) < 40 * 3 + 5 * 10 + 10


def test_revocations_are_reconciled_from_their_log_and_leave_it(world: Any) -> None:
    """A removal whose closing failed (Redis down) is found by the next sweep from the revocation
    log, which empties once a sweep a minute later has succeeded; other workspaces' connections are
    not read."""
    from collab.domain import members

    wid = world.workspace("ann", "bob")
    other = world.workspace("cat", "dan")
    a, b = world.connect("ann", wid), world.connect("bob", wid)
    world.connect("cat", other)
    members.remove_member(world.rt.db, "ann", wid, "bob")  # committed; workspaces.settle not run
    # the closing after the commit never ran (as if Redis failed then): bob is still registered
    assert world.rt.store.connection(b.cid) is not None
    with counting() as wire:
        assert world.sweep()["revoked"] == 1
    assert world.rt.store.connection(b.cid) is None and b.cid in world.sink.deleted
    other_keys = {k for k in wire.keys if other.encode() in k}
    assert other_keys == set(), "the other workspace was not read"

    def log() -> int:
        return int(
            world.rt.db.run(lambda cur: cur.execute("SELECT count(*) AS n FROM revocations").fetchone()["n"])
        )

    assert log() == 1  # kept until a sweep a minute after it has succeeded
    world.rt.db.run(lambda cur: cur.execute("UPDATE revocations SET at = at - interval '2 minutes'"))
    assert world.sweep()["revoked"] == 0
    assert log() == 0
    assert a.cid not in world.sink.deleted


def test_a_deleted_workspace_left_in_redis_is_closed_by_the_sweep(world: Any) -> None:
    from collab.domain import workspaces

    wid = world.workspace("ann", "bob")
    a, b = world.connect("ann", wid), world.connect("bob", wid)
    workspaces.delete(world.rt.db, "ann", wid)  # committed; closing the connections never ran
    assert world.sweep()["revoked"] == 2
    assert {a.cid, b.cid} <= set(world.sink.deleted)
    assert world.rt.store.workspace_connections(wid) == {}
    assert not world.rt.store.r.exists(f"collab:{{w:{wid}}}:presence")


def test_a_member_added_back_is_not_closed(world: Any) -> None:
    from collab.domain import members

    wid = world.workspace("ann", "bob")
    members.remove_member(world.rt.db, "ann", wid, "bob")
    members.add_member(world.rt.db, "ann", wid, user_id="bob")
    b = world.connect("bob", wid)
    assert world.sweep()["revoked"] == 0
    assert world.rt.store.connection(b.cid) is not None
