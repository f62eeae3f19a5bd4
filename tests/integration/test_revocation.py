"""The revocation log's sweep (collab.domain.revocation): what it closes, what it keeps, when a
revocation leaves the log, and the retries before it is needed. The end-to-end case (Redis down
during a removal, the next sweep closes the connection) is in test_revocation_identity.py."""

from __future__ import annotations

import types
from typing import Any

from collab.domain import presence, revocation
from collab.errors import Unavailable


def _revoke(world: Any, wid: str, uid: str | None) -> None:
    world.rt.db.run(lambda cur: revocation.record(cur, wid, uid))


def _log(world: Any) -> list[tuple[str, str | None]]:
    return world.rt.db.run(
        lambda cur: [
            (r["wid"], r["user_id"])
            for r in cur.execute("SELECT workspace_id::text AS wid, user_id FROM revocations ORDER BY id")
        ]
    )


def _age(world: Any, seconds: int) -> None:
    world.rt.db.run(
        lambda cur: cur.execute("UPDATE revocations SET at = at - make_interval(secs => %s)", (seconds,))
    )


def test_closing_is_retried_with_growing_pauses_then_left_to_the_sweeper(
    world: Any, monkeypatch: Any
) -> None:
    wid = world.workspace("ann", "bob")
    pauses: list[float] = []
    monkeypatch.setattr(revocation, "time", types.SimpleNamespace(sleep=pauses.append))
    failures = [0]

    def close_user(*args: Any) -> int:
        failures[0] += 1
        raise Unavailable("cache unavailable")

    monkeypatch.setattr(presence, "close_user", close_user)
    gateway = world.rt.gateway_for(None)
    assert revocation.close_with_retry(world.rt, gateway, wid, "bob") is False
    assert failures == [3] and pauses == [0.2, 0.4]  # no pause after the last attempt

    pauses.clear()
    outcomes = iter([Unavailable("cache unavailable"), 1])

    def flaky(*args: Any) -> int:
        out = next(outcomes)
        if isinstance(out, Exception):
            raise out
        return out

    monkeypatch.setattr(presence, "close_user", flaky)
    assert revocation.close_with_retry(world.rt, gateway, wid, "bob") is True
    assert pauses == [0.2]


def test_a_sweep_closes_a_removed_members_connections_keeps_a_re_added_ones_and_tells_the_others(
    world: Any,
) -> None:
    wid = world.workspace("ann", "bob", "cat")
    ann, bob, cat = world.connect("ann", wid), world.connect("bob", wid), world.connect("cat", wid)
    assert revocation.reconcile(world.rt, world.rt.gateway_for(None)) == 0  # nothing in the log
    world.remove_member(wid, "bob")  # removed; closing its connections "failed"
    _revoke(world, wid, "bob")
    _revoke(world, wid, "cat")  # removed and added back since: still a member
    world.rt.connections[bob.cid] = object()  # the container's cache of the connection
    world.sink.reset()

    assert revocation.reconcile(world.rt, world.rt.gateway_for(None)) == 1
    assert world.sink.deleted == [bob.cid]
    assert bob.cid not in world.rt.connections
    assert set(world.rt.store.workspace_connections(wid)) == {ann.cid, cat.cid}
    left = [f["data"]["user"]["id"] for f in world.sink.frames(ann.cid, "presence.left")]
    assert left == ["bob"] and [
        f["data"]["user"]["id"] for f in world.sink.frames(cat.cid, "presence.left")
    ] == ["bob"]

    # the revocations stay until a sweep reads them a minute after they were made
    assert _log(world) == [(wid, "bob"), (wid, "cat")]
    assert revocation.reconcile(world.rt, world.rt.gateway_for(None)) == 0
    assert len(_log(world)) == 2
    _age(world, revocation.SETTLE_S - 5)
    revocation.reconcile(world.rt, world.rt.gateway_for(None))
    assert len(_log(world)) == 2
    _age(world, 10)
    assert revocation.reconcile(world.rt, world.rt.gateway_for(None)) == 0
    assert _log(world) == []


def test_a_deleted_workspaces_connections_are_all_closed_and_its_redis_state_dropped(world: Any) -> None:
    wid = world.workspace("ann", "bob")
    ann, bob = world.connect("ann", wid), world.connect("bob", wid)
    world.rt.db.run(lambda cur: cur.execute("DELETE FROM workspace_members WHERE workspace_id = %s", (wid,)))
    _revoke(world, wid, None)
    world.sink.reset()
    world.rt.connections.pop(ann.cid, None)  # a container that never served it: nothing cached
    world.rt.connections[bob.cid] = object()
    assert revocation.reconcile(world.rt, world.rt.gateway_for(None)) == 2
    assert bob.cid not in world.rt.connections
    assert sorted(world.sink.deleted) == sorted([ann.cid, bob.cid])
    assert world.rt.store.workspace_connections(wid) == {}
    assert world.sink.frames(ann.cid) == world.sink.frames(bob.cid) == []  # nobody is left to tell
    # Nothing of the workspace is left but the cost meter's counters of the month, if its buffer
    # flushed during the test (every 5 s): they expire on their own (usage.KEEP_S) and nobody can
    # read them (the usage route needs a member).
    left = [k for k in world.rt.store.r.keys(f"*{wid}*") if b":usage:" not in k]
    assert left == []


def test_a_sweep_reads_at_most_its_batch_of_revocations_oldest_first(world: Any) -> None:
    one, two = world.workspace("ann", "bob"), world.workspace("cat", "dan")
    bob, dan = world.connect("bob", one), world.connect("dan", two)
    world.remove_member(one, "bob")
    world.remove_member(two, "dan")
    _revoke(world, one, "bob")
    _revoke(world, two, "dan")
    _age(world, revocation.SETTLE_S + 1)
    world.sink.reset()
    assert revocation.reconcile(world.rt, world.rt.gateway_for(None), batch=1) == 1
    assert world.sink.deleted == [bob.cid] and _log(world) == [(two, "dan")]
    assert revocation.reconcile(world.rt, world.rt.gateway_for(None), batch=1) == 1
    assert world.sink.deleted == [bob.cid, dan.cid] and _log(world) == []


def test_a_sweep_counts_what_it_closed_in_every_workspace_and_logs_it(world: Any, monkeypatch: Any) -> None:
    warnings: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(
        revocation, "logger", types.SimpleNamespace(warning=lambda m, extra: warnings.append((m, extra)))
    )
    one, two = world.workspace("ann", "bob"), world.workspace("cat", "dan")
    world.connect("bob", one), world.connect("dan", two), world.connect("dan", two)
    for wid, uid in ((one, "bob"), (two, "dan")):
        world.remove_member(wid, uid)
        _revoke(world, wid, uid)
    assert revocation.reconcile(world.rt, world.rt.gateway_for(None)) == 3
    # operators see that the sweeper, not the removal, closed them
    assert warnings == [("closed connections of users who are no longer members", {"closed": 3})]
    assert revocation.reconcile(world.rt, world.rt.gateway_for(None)) == 0
    assert len(warnings) == 1  # nothing closed: nothing logged
