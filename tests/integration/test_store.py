"""The Redis store, method by method, against the machine's Redis: what each call returns and what it
leaves in Redis (the layout docs/redis.md documents: keys, fields, scores, expiries) and how many
round trips it costs. The end-to-end tests reach the store through the handlers; these pin each
operation's own promise, and run in milliseconds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from collab.adapters.redis import keys
from collab.adapters.redis.store import (
    CONN_TTL_S,
    FIRST_DEADLINE_MS,
    HISTORY_EVENT_MAX_BYTES,
    HISTORY_LEN,
    HISTORY_TTL_MS,
    PENDING_TTL_S,
    REQUEST_TTL_S,
    ConnInfo,
    Removed,
    Store,
    _removed,
    _s,
    connect_redis,
)
from collab.errors import Unavailable
from tests.support.redis_wire import counting

W = "0b6f3c1e-5d2a-4f7e-9a10-3c4d5e6f7a80"
W2 = "1c7a4d2f-6e3b-4a8f-8b21-4d5e6f7a8b91"
NOW = 1_700_000_000_000


@pytest.fixture
def store(settings: Any, clean: None) -> Iterator[Store]:
    s = Store(connect_redis(settings.redis_url))
    s.ping()  # connected: round trips counted below are the operation's own
    yield s
    s.r.close()


def conn(cid: str, uid: str = "ann", wid: str = W, name: str = "Ann", **kw: Any) -> ConnInfo:
    return ConnInfo(cid, wid, uid, name, NOW, **kw)


def entry(name: str, status: str = "active", at: int = NOW) -> dict[str, Any]:
    return {"display_name": name, "status": status, "viewing": None, "last_seen_ms": at}


def joined(store: Store, info: ConnInfo, status: str = "active") -> ConnInfo:
    """Registered and announced (synced): a fan-out target, part of its user's presence."""
    assert store.register(info, NOW) is None
    store.announce(info, entry(info.display_name, status))
    return info


def pttl(r: Any, key: str) -> int:
    return int(r.pttl(key))


# -- module helpers ------------------------------------------------------------------------------
def test_removed_reads_each_flat_quadruple_from_its_start() -> None:
    left = json.dumps({"display_name": "Ann", "status": "away"})
    updated = json.dumps({"display_name": "Bob", "status": "away"})
    flat = [9, 9, 9, b"c1", b"ann", left.encode(), b"", "c2", "bob", "", updated, "c3", "cy", "{}", ""]
    assert _removed(flat, 3) == [
        Removed("c1", "ann", True, "Ann", None, {"display_name": "Ann", "status": "away"}),
        Removed("c2", "bob", False, "", {"display_name": "Bob", "status": "away"}, None),
        Removed("c3", "cy", True, "", None, {}),
    ]
    assert _removed(["c1", "ann", "", ""]) == [Removed("c1", "ann", False, "", None, None)]
    assert _removed([]) == []
    nameless = json.dumps({"display_name": None})
    assert _removed(["c1", "ann", nameless, ""])[0].display_name == ""


def test_s_decodes_bytes_and_prints_the_rest() -> None:
    assert _s(b"caf\xc3\xa9") == "café"
    assert _s(12) == "12"
    assert _s("x") == "x"


# -- the client --------------------------------------------------------------------------------------
def test_a_client_gives_up_after_two_seconds_and_checks_idle_connections() -> None:
    r = connect_redis("redis://127.0.0.1:1/0")
    kw = r.connection_pool.connection_kwargs
    assert (kw["socket_timeout"], kw["socket_connect_timeout"], kw["health_check_interval"]) == (2, 2, 30)
    assert "password" not in kw or kw["password"] is None
    assert r.connection_pool.max_connections == 64
    with_password = connect_redis("redis://127.0.0.1:1/0", password="s3cret")
    assert with_password.connection_pool.connection_kwargs["password"] == "s3cret"
    tls = connect_redis("rediss://127.0.0.1:1/0")
    assert tls.connection_pool.connection_class is redis.SSLConnection


def test_cluster_mode_builds_a_cluster_client_with_the_same_limits(monkeypatch: Any) -> None:
    from redis.cluster import RedisCluster

    seen: list[tuple[str, dict[str, Any]]] = []

    def from_url(cls: Any, url: str, **kw: Any) -> str:
        seen.append((url, kw))
        return "c"

    monkeypatch.setattr(RedisCluster, "from_url", classmethod(from_url))
    assert connect_redis("rediss://cfg.example:6379", cluster=True, password="pw") == "c"
    assert seen == [
        (
            "rediss://cfg.example:6379",
            {"socket_timeout": 2, "socket_connect_timeout": 2, "health_check_interval": 30, "password": "pw"},
        )
    ]


# -- errors ------------------------------------------------------------------------------------------
def _raise(exc: BaseException) -> Any:
    def fn(*args: Any, **kwargs: Any) -> Any:
        raise exc

    return fn


def test_every_redis_error_is_unavailable_but_noscript(store: Store) -> None:
    with pytest.raises(Unavailable) as full:
        store._call(_raise(redis.exceptions.OutOfMemoryError("OOM command not allowed")))
    assert full.value.message == "cache is full"
    assert isinstance(full.value.__cause__, redis.exceptions.OutOfMemoryError)
    for exc in (
        redis.exceptions.ConnectionError("down"),
        redis.exceptions.TimeoutError("slow"),
        redis.exceptions.ReadOnlyError("replica"),
        redis.exceptions.BusyLoadingError("loading"),
    ):
        with pytest.raises(Unavailable) as down:
            store._call(_raise(exc))
        assert down.value.message == "cache unavailable"
        assert down.value.__cause__ is exc
    with pytest.raises(redis.exceptions.NoScriptError):
        store._call(_raise(redis.exceptions.NoScriptError("NOSCRIPT")))
    assert store._call(lambda a, b=0: a + b, 2, b=3) == 5


def test_a_store_on_a_dead_redis_answers_unavailable() -> None:
    s = Store(connect_redis("redis://127.0.0.1:1/0"))
    with pytest.raises(Unavailable):
        s.ping()
    with pytest.raises(Unavailable):
        s.register(conn("c1"), NOW)


# -- batches and scripts -----------------------------------------------------------------------------
def test_a_batch_is_one_transaction_on_one_node_and_plain_calls_in_a_cluster(store: Store) -> None:
    assert store.cluster is False
    assert store._pipeline().transaction is True
    clustered = Store(store.r, cluster=True)
    assert clustered._pipeline().transaction is False
    with counting() as wire:
        assert store._batch(lambda c: c.set("collab:t", 1), lambda c: c.incr("collab:t")) == [True, 2]
    assert wire.round_trips == 1
    with counting() as wire:
        assert clustered._batch(lambda c: c.set("collab:t", 5), lambda c: c.incr("collab:t")) == [True, 6]
    assert wire.round_trips == 2


def test_a_registration_costs_one_round_trip(store: Store) -> None:
    store._load_scripts()
    with counting() as wire:
        assert store.register(conn("c1"), NOW) is None
    assert (wire.round_trips, wire.by_command.get("EVALSHA")) == (1, 1)


def test_scripts_in_a_cluster_run_through_the_script_object(store: Store) -> None:
    clustered = Store(store.r, cluster=True)
    store.r.script_flush()
    assert clustered.register(conn("c1"), NOW) is None  # the Script object loads itself on NOSCRIPT
    assert clustered.workspace_connections(W) == {"c1": "ann"}
    assert clustered.admitted("c1", "Ann A.") is True


def test_a_batch_reloads_forgotten_scripts_once(store: Store, monkeypatch: Any) -> None:
    store.r.script_flush()
    assert store.register(conn("c1"), NOW) is None
    shas = [s.sha for s in (store._begin, store._register, store._announce, store._remove, store._heartbeat)]
    shas += [
        s.sha for s in (store._presence, store._append, store._leaves, store._admit, store._presence_batch)
    ]
    assert store.r.script_exists(*shas) == [True] * 10
    store.r.script_flush()
    store._load_scripts()
    assert store.r.script_exists(*shas) == [True] * 10
    # a Redis that forgets them again at once: the second attempt's NOSCRIPT reaches the caller
    store.r.script_flush()
    loads: list[int] = []
    monkeypatch.setattr(store, "_load_scripts", lambda: loads.append(1))
    with pytest.raises(redis.exceptions.NoScriptError):
        store.register(conn("c2"), NOW)
    assert loads == [1]


# -- tickets, rate limits, idempotency ----------------------------------------------------------------
def test_a_ticket_is_consumed_once_and_remembered_for_its_ttl(store: Store) -> None:
    assert store.consume_ticket("jti-1", 30_000) is True
    assert store.consume_ticket("jti-1", 30_000) is False
    assert store.r.get(keys.ticket("jti-1")) == b"1"
    assert 29_000 < pttl(store.r, keys.ticket("jti-1")) <= 30_000
    assert store.consume_ticket("jti-2", -5) is True  # an expired ticket still takes a 1 ms slot


def test_begin_counts_frames_in_a_sliding_window(store: Store) -> None:
    def begin(at: int, rid: str | None = None, limit: int = 2) -> tuple[str, str]:
        return store.begin("ann", bucket="rl", limit=limit, window_ms=60_000, now_ms=at, request_id=rid)

    assert begin(NOW) == ("new", "")
    assert begin(NOW + 1_000) == ("new", "")
    assert begin(NOW + 1_500) == ("limited", "58500")  # the oldest leaves the window in 58.5 s
    window = keys.user("ann", "rl")
    members = store.r.zrange(window, 0, -1, withscores=True)
    assert [int(s) for _, s in members] == [NOW, NOW + 1_000]
    assert all(
        m.decode().startswith(f"{int(s)}-") and len(m.decode()) == len(f"{int(s)}-") + 8 for m, s in members
    )
    assert 59_000 < pttl(store.r, window) <= 60_000
    assert begin(NOW + 60_000) == ("new", "")  # the first left the window
    assert begin(NOW, limit=0) == ("new", "")  # no limit: not counted
    assert store.r.zcard(window) == 2


def test_begin_claims_a_request_once(store: Store) -> None:
    def begin(rid: str) -> tuple[str, str]:
        return store.begin("ann", bucket="rl", limit=100, window_ms=60_000, now_ms=NOW, request_id=rid)

    assert begin("r1") == ("new", "")
    claim = keys.user("ann", "req:r1")
    assert store.r.get(claim) == b"pending"
    assert PENDING_TTL_S - 2 < store.r.ttl(claim) <= PENDING_TTL_S
    assert begin("r1") == ("seen", "pending")
    store.finish("ann", "r1", '{"ok":true}')
    assert begin("r1") == ("seen", '{"ok":true}')
    assert store.request_answer("ann", "r1") == '{"ok":true}'
    assert REQUEST_TTL_S - 2 < store.r.ttl(claim) <= REQUEST_TTL_S
    assert store.r.zcard(keys.user("ann", "rl")) == 3  # every frame counted, claims or not
    # without a request id nothing is claimed
    assert store.begin("bob", bucket="rl", limit=100, window_ms=60_000, now_ms=NOW) == ("new", "")
    assert store.r.keys(keys.user("bob", "req:*")) == []


def test_finish_needs_a_claim_and_abandon_frees_it(store: Store) -> None:
    store.finish("ann", "never-claimed", "answer")
    assert store.request_answer("ann", "never-claimed") is None
    store.begin("ann", bucket="rl", limit=10, window_ms=1_000, now_ms=NOW, request_id="r1")
    store.abandon("ann", "r1")
    assert store.request_answer("ann", "r1") is None
    assert store.begin("ann", bucket="rl", limit=10, window_ms=1_000, now_ms=NOW, request_id="r1") == (
        "new",
        "",
    )


def test_refusals_are_counted_per_window(store: Store) -> None:
    assert store.count_refusal("ann", "rl", 60_000) == 1
    assert store.count_refusal("ann", "rl", 60_000) == 2
    assert store.count_refusal("ann", "connrl", 60_000) == 1
    over = keys.user("ann", "rl:over")
    assert store.r.get(over) == b"2"
    assert 59_000 < pttl(store.r, over) <= 60_000


# -- connections ---------------------------------------------------------------------------------------
def test_register_records_the_connection_everywhere_but_in_the_fanout(store: Store) -> None:
    info = conn("c1", ticket_jti="jti-1", ticket_expires_at=NOW + 30_000)
    assert store.register(info, NOW) is None
    assert store.r.hgetall(keys.conn("c1")) == {
        b"wid": W.encode(),
        b"uid": b"ann",
        b"name": b"Ann",
        b"connected_at": str(NOW).encode(),
        b"jti": b"jti-1",
        b"jti_exp": str(NOW + 30_000).encode(),
    }
    assert CONN_TTL_S - 2 < store.r.ttl(keys.conn("c1")) <= CONN_TTL_S
    for name in ("conns", "hb"):
        assert CONN_TTL_S - 2 < store.r.ttl(keys.ws(W, name)) <= CONN_TTL_S
    assert store.r.zscore(keys.ws(W, "hb"), "c1") == NOW + FIRST_DEADLINE_MS
    assert store.r.zscore(keys.SWEEP, f"{W}|c1") == NOW + FIRST_DEADLINE_MS
    assert store.connection("c1") == info
    assert not store.connection("c1").admitted  # type: ignore[union-attr]
    assert store.workspace_connections(W) == {"c1": "ann"}
    assert store.fanout_targets(W) == [] and store.user_connections("ann") == {}


def test_register_takes_a_given_deadline_and_an_admitted_connection_has_no_ticket(store: Store) -> None:
    assert store.register(conn("c1"), NOW, NOW + 5) is None
    assert store.r.zscore(keys.ws(W, "hb"), "c1") == NOW + 5
    assert store.r.zscore(keys.SWEEP, f"{W}|c1") == NOW + 5
    assert set(store.r.hkeys(keys.conn("c1"))) == {b"wid", b"uid", b"name", b"connected_at"}
    assert store.connection("c1") == conn("c1")
    assert store.connection("c1").admitted  # type: ignore[union-attr]
    assert store.connection("nobody") is None


def test_a_record_without_name_or_time_reads_as_empty(store: Store) -> None:
    store.r.hset(keys.conn("c9"), mapping={"wid": W, "uid": "ann"})
    assert store.connection("c9") == ConnInfo("c9", W, "ann", "", 0, "", 0)


def test_register_refuses_over_a_cap_and_leaves_nothing_behind(store: Store) -> None:
    assert store.register(conn("c1"), NOW, per_user=2, per_workspace=3) is None
    assert store.register(conn("c2"), NOW, per_user=2, per_workspace=3) is None
    with counting() as wire:
        assert store.register(conn("c3"), NOW, per_user=2, per_workspace=3) == "user"
    # the refused record dropped where it was written: no user index (it never was announced)
    assert (wire.round_trips, wire.by_command.get("HDEL"), wire.by_command["DEL"]) == (2, None, 1)
    assert store.register(conn("c4", "bob"), NOW, per_user=2, per_workspace=3) is None
    assert store.register(conn("c5", "cy"), NOW, per_user=2, per_workspace=3) == "workspace"
    for refused in ("c3", "c5"):
        assert store.connection(refused) is None
        assert store.r.zscore(keys.SWEEP, f"{W}|{refused}") is None
        assert store.r.zscore(keys.ws(W, "hb"), refused) is None
    assert store.workspace_connections(W) == {"c1": "ann", "c2": "ann", "c4": "bob"}
    assert store.register(conn("c6", "cy"), NOW) is None  # no caps by default
    assert store.register(conn("c7", "cy"), NOW) is None


def test_admitted_names_the_connection_and_drops_its_ticket(store: Store) -> None:
    store.register(conn("c1", ticket_jti="jti-1", ticket_expires_at=NOW + 1), NOW)
    assert store.admitted("c1", "Ann Smith") is True
    assert store.connection("c1") == ConnInfo("c1", W, "ann", "Ann Smith", NOW)
    assert store.admitted("gone", "X") is False
    assert not store.r.exists(keys.conn("gone"))


def test_fanout_targets_are_the_announced_and_active_ones(store: Store) -> None:
    joined(store, conn("c1"))
    joined(store, conn("c2", "bob", name="Bob"), "away")
    store.set_presence(conn("c2", "bob", name="Bob"), "away", None, NOW, NOW + 1)
    assert store.register(conn("c3", "cy"), NOW) is None  # not announced
    assert sorted(store.fanout_targets(W)) == ["c1", "c2"]
    assert store.fanout_targets(W, active_only=True) == ["c1"]
    with counting() as wire:
        store.fanout_targets(W, active_only=True)
    assert wire.round_trips == 1
    assert store.fanout_targets(W2) == [] and store.fanout_targets(W2, active_only=True) == []


def test_remove_connections_clears_every_record_and_says_who_left(store: Store) -> None:
    joined(store, conn("a1"))
    a2 = joined(store, conn("a2"))
    joined(store, conn("b", "bob", name="Bob"))
    store.set_presence(a2, "away", None, NOW, NOW + 1)
    assert store.remove_connections(W, []) == []
    removed = store.remove_connections(W, ["a1", "b", "ghost"])
    assert removed == [
        Removed("a1", "ann", False, "", {**entry("Ann", "away"), "last_seen_ms": NOW}, None),
        Removed("b", "bob", True, "Bob", None, entry("Bob")),
    ]
    assert store.workspace_connections(W) == {"a2": "ann"}
    assert store.user_connections("ann") == {"a2": W} and store.user_connections("bob") == {}
    for cid in ("a1", "b"):
        assert store.connection(cid) is None
        assert store.r.zscore(keys.SWEEP, f"{W}|{cid}") is None
    assert store.r.zscore(keys.SWEEP, f"{W}|a2") is not None
    assert set(store.presence(W)) == {"ann"}


def test_removing_connections_that_are_gone_still_drops_their_records(store: Store) -> None:
    """A conn record or index entry left behind by a lost removal goes with the next attempt."""
    store.r.hset(keys.conn("c1"), mapping={"wid": W, "uid": "ann"})
    store.r.zadd(keys.SWEEP, {f"{W}|c1": NOW})
    store.r.hset(keys.user("ann", "conns"), "c1", W)
    with counting() as wire:
        assert store.remove_connections(W, ["c1"]) == []
    assert "HDEL" not in wire.by_command  # whose user index held it is unknown: none is touched
    assert not store.r.exists(keys.conn("c1"))
    assert store.r.zscore(keys.SWEEP, f"{W}|c1") is None
    assert store.user_connections("ann") == {"c1": W}  # who held it is unknown: the TTL drops it


def test_connections_of_groups_by_workspace_and_skips_the_empty(store: Store) -> None:
    assert store.connections_of([]) == {}
    store.register(conn("c1"), NOW)
    store.register(conn("c2", "bob", wid=W2), NOW)
    with counting() as wire:
        out = store.connections_of([W, W2, "empty"])
    assert out == {W: {"c1": "ann"}, W2: {"c2": "bob"}}
    assert wire.round_trips == 1


# -- heartbeats and the sweeper --------------------------------------------------------------------
def test_a_heartbeat_with_a_mode_moves_both_deadlines_in_one_round_trip(store: Store) -> None:
    a = joined(store, conn("a"))
    store.append_event(W, 7, '{"seq":7}')
    store.r.expire(keys.conn("a"), 10)
    with counting() as wire:
        beat = store.heartbeat(a, NOW + 1_000, (NOW + 61_000, NOW + 601_000), "away")
    assert wire.round_trips == 1
    assert beat.alive and beat.latest_seq == 7 and beat.removed == [] and beat.batch_due is False
    assert beat.updated == {**entry("Ann", "away"), "last_seen_ms": NOW + 1_000}
    assert store.r.zscore(keys.ws(W, "hb"), "a") == NOW + 601_000
    assert store.r.zscore(keys.SWEEP, f"{W}|a") == NOW + 601_000
    assert store.r.ttl(keys.conn("a")) > CONN_TTL_S - 2
    beat = store.heartbeat(a, NOW + 2_000, (NOW + 62_000, NOW + 602_000), "active")
    assert beat.updated is not None and beat.updated["status"] == "active"
    assert store.r.zscore(keys.SWEEP, f"{W}|a") == NOW + 62_000
    assert store.heartbeat(a, NOW + 3_000, (NOW + 63_000, NOW + 603_000), "active").updated is None


def test_a_heartbeat_without_a_mode_keeps_the_connections_and_indexes_its_deadline(store: Store) -> None:
    a = joined(store, conn("a"))
    store.set_presence(a, "away", None, NOW, NOW + 600_000)
    store.r.expire(keys.conn("a"), 10)
    beat = store.heartbeat(a, NOW + 1_000, (NOW + 61_000, NOW + 601_000))
    assert beat.alive and beat.latest_seq == 0 and beat.updated is None
    assert store.r.zscore(keys.SWEEP, f"{W}|a") == NOW + 601_000
    assert store.r.ttl(keys.conn("a")) > CONN_TTL_S - 2


def test_a_heartbeat_never_puts_back_an_index_entry_removed_meanwhile(store: Store) -> None:
    """A removal that ran between the heartbeat's script and its index write took the entry out:
    the write only moves an entry that is there (xx), with or without a mode."""
    a = joined(store, conn("a"))
    store.r.zrem(keys.SWEEP, f"{W}|a")
    assert store.heartbeat(a, NOW + 1_000, (NOW + 61_000, NOW + 601_000)).alive
    assert store.heartbeat(a, NOW + 1_000, (NOW + 61_000, NOW + 601_000), "away").alive
    assert store.r.zscore(keys.SWEEP, f"{W}|a") is None


def test_a_dead_connections_heartbeat_says_so_and_indexes_nothing(store: Store) -> None:
    ghost = conn("ghost")
    beat = store.heartbeat(ghost, NOW, (NOW + 60_000, NOW + 600_000))
    assert not beat.alive
    assert store.r.zscore(keys.SWEEP, f"{W}|ghost") is None
    beat = store.heartbeat(ghost, NOW, (NOW + 60_000, NOW + 600_000), "active")
    assert not beat.alive
    assert store.r.zscore(keys.SWEEP, f"{W}|ghost") is None  # xx: a heartbeat never adds to the index


def test_a_heartbeat_sweeps_overdue_peers_up_to_its_limit(store: Store) -> None:
    a = joined(store, conn("a"))
    for i in range(103):
        info = conn(f"p{i}", f"u{i}", name=f"U{i}")
        assert store.register(info, NOW, NOW + 10) is None
        store.announce(info, entry(f"U{i}"))
    beat = store.heartbeat(a, NOW + 1_000, (NOW + 61_000, NOW + 601_000), "active", limit=2)
    assert [(r.connection_id, r.user_id, r.left, r.display_name) for r in beat.removed] == [
        ("p0", "u0", True, "U0"),
        ("p1", "u1", True, "U1"),
    ]
    for r in beat.removed:  # their records outside the workspace's slot went too
        assert store.connection(r.connection_id) is None
        assert store.user_connections(r.user_id) == {}
        assert store.r.zscore(keys.SWEEP, f"{W}|{r.connection_id}") is None
    beat = store.heartbeat(a, NOW + 1_000, (NOW + 61_000, NOW + 601_000))
    assert len(beat.removed) == 100  # 100 at most by default
    assert len(store.workspace_connections(W)) == 2  # a and the 101st overdue


def test_a_heartbeat_says_when_the_presence_batch_is_due(store: Store) -> None:
    a = joined(store, conn("a"))
    store.r.hset(keys.ws(W, "presence_batch"), "~since", NOW)
    assert store.heartbeat(a, NOW + 499, (NOW + 60_000, NOW + 600_000)).batch_due is False
    assert store.heartbeat(a, NOW + 500, (NOW + 60_000, NOW + 600_000)).batch_due is True
    assert store.heartbeat(a, NOW + 100, (NOW + 60_000, NOW + 600_000), batch_interval_ms=100).batch_due


def test_due_for_sweep_groups_the_overdue_by_workspace(store: Store) -> None:
    store.register(conn("c1"), NOW, NOW + 10)
    store.register(conn("c2"), NOW, NOW + 20)
    store.register(conn("c3", wid=W2), NOW, NOW + 30)
    store.register(conn("c4"), NOW, NOW + 40)
    assert store.due_for_sweep(NOW + 30, 10) == {W: ["c1", "c2"], W2: ["c3"]}
    assert store.due_for_sweep(NOW + 30, 1) == {W: ["c1"]}
    assert store.due_for_sweep(NOW + 9, 10) == {}


def test_sweep_workspace_removes_only_the_still_overdue_and_fixes_the_index(store: Store) -> None:
    joined(store, conn("c1"))
    joined(store, conn("c2", "bob", name="Bob"))
    store.r.zadd(keys.ws(W, "hb"), {"c1": NOW + 10, "c2": NOW + 500})
    store.r.zadd(keys.SWEEP, {f"{W}|c1": NOW + 10, f"{W}|c2": NOW + 10})
    removed = store.sweep_workspace(W, ["c1", "c2", "ghost"], NOW + 10)
    assert [(r.connection_id, r.left) for r in removed] == [("c1", True)]
    assert store.r.zscore(keys.SWEEP, f"{W}|c2") == NOW + 500  # the index caught up
    assert store.r.zscore(keys.SWEEP, f"{W}|ghost") is None
    assert store.sweep_workspace(W, ["c2"], NOW + 499) == []
    assert [r.connection_id for r in store.sweep_workspace(W, ["c2"], NOW + 500)] == ["c2"]
    # a connection the index no longer holds (removed meanwhile) is not put back
    assert store.register(conn("c3"), NOW, NOW + 900) is None
    store.r.zrem(keys.SWEEP, f"{W}|c3")
    assert store.sweep_workspace(W, ["c3"], NOW + 10) == []
    assert store.r.zscore(keys.SWEEP, f"{W}|c3") is None


# -- presence ----------------------------------------------------------------------------------------
def test_announce_makes_a_fanout_target_and_says_whether_the_user_came_online(store: Store) -> None:
    a1, a2 = conn("a1"), conn("a2")
    store.register(a1, NOW)
    store.register(a2, NOW)
    assert store.announce(a1, entry("Ann")) == (1, None)
    assert store.announce(a2, entry("Ann", at=NOW + 5)) == (0, None)
    assert store.presence(W) == {"ann": entry("Ann")}
    assert store.user_connections("ann") == {"a1": W, "a2": W}
    assert CONN_TTL_S - 2 < store.r.ttl(keys.user("ann", "conns")) <= CONN_TTL_S
    assert sorted(store.fanout_targets(W)) == ["a1", "a2"]


def test_announce_of_a_removed_connection_leaves_no_trace_in_the_users_index(store: Store) -> None:
    assert store.announce(conn("gone"), entry("Ann")) == (-1, None)
    assert store.user_connections("ann") == {}
    assert store.fanout_targets(W) == []


def test_a_reconnect_within_the_grace_takes_the_held_leave_back(store: Store) -> None:
    store.hold_leave(W, "ann", entry("Ann", "away"), NOW)
    assert store.leaves_held(W)
    info = conn("a1")
    store.register(info, NOW)
    result, held = store.announce(info, entry("Ann", at=NOW + 9))
    assert result == 2
    assert held == {**entry("Ann", "away"), "held_ms": NOW}
    assert store.presence(W) == {"ann": entry("Ann", "away", NOW + 9)}
    assert not store.leaves_held(W)
    # the connection takes the status peers still see as its mode: away, not an active target
    assert store.fanout_targets(W) == ["a1"] and store.fanout_targets(W, active_only=True) == []


def test_leaves_are_held_then_taken_when_due(store: Store) -> None:
    assert not store.leaves_held(W)
    with counting() as wire:
        store.hold_leave(W, "ann", {"display_name": "Ann"}, NOW)
    assert wire.round_trips == 1
    store.hold_leave(W, "bob", {"display_name": "Bob"}, NOW + 100)
    store.hold_leave(W2, "cy", {"display_name": "Cy"}, NOW + 50)
    assert store.r.zscore(keys.LEAVING, W) == NOW  # the earliest hold (nx)
    assert store.leaves_held(W)
    assert store.workspaces_with_leaves(NOW + 50) == [W, W2]
    assert store.workspaces_with_leaves(NOW + 50, limit=1) == [W]
    assert store.workspaces_with_leaves(NOW - 1) == []
    assert store.take_leaves(W, NOW + 99) == [("ann", {"display_name": "Ann", "held_ms": NOW})]
    assert store.r.zscore(keys.LEAVING, W) == NOW + 100  # what is left, by its own time
    assert store.take_leaves(W, NOW + 99) == []
    assert store.take_leaves(W, NOW + 100) == [("bob", {"display_name": "Bob", "held_ms": NOW + 100})]
    for uid in ("dee", "eve", "fay"):
        store.hold_leave(W, uid, {"display_name": uid.title()}, NOW + 200)
    assert sorted(store.take_leaves(W, NOW + 200)) == [
        (uid, {"display_name": uid.title(), "held_ms": NOW + 200}) for uid in ("dee", "eve", "fay")
    ]
    assert store.r.zscore(keys.LEAVING, W) is None
    assert not store.leaves_held(W)


def test_workspaces_with_leaves_and_batches_list_500_by_default(store: Store) -> None:
    store.r.zadd(keys.LEAVING, {f"w{i}": NOW for i in range(501)})
    store.r.zadd(keys.PRESENCE_BATCHES, {f"w{i}": NOW for i in range(501)})
    assert len(store.workspaces_with_leaves(NOW)) == 500
    assert len(store.workspaces_with_batches(NOW)) == 500
    assert store.workspaces_with_batches(NOW, limit=2) == ["w0", "w1"]
    assert store.workspaces_with_batches(NOW - 1) == []


def test_set_presence_moves_the_deadline_and_says_what_changed(store: Store) -> None:
    a = joined(store, conn("a"))
    store.register(conn("b", "bob"), NOW)  # registered, not announced: not online
    out, changed = store.set_presence(a, "away", "task-1", NOW + 5, NOW + 600_000)
    assert changed and out == {
        "display_name": "Ann",
        "status": "away",
        "viewing": "task-1",
        "last_seen_ms": NOW + 5,
    }
    assert store.r.zscore(keys.SWEEP, f"{W}|a") == NOW + 600_000
    assert store.r.zscore(keys.ws(W, "hb"), "a") == NOW + 600_000
    out, changed = store.set_presence(a, "away", "task-1", NOW + 6, NOW + 600_000)
    assert not changed and out is not None and out["last_seen_ms"] == NOW + 6
    assert store.set_presence(conn("b", "bob"), "active", None, NOW, NOW + 1) == (None, False)
    assert store.r.zscore(keys.ws(W, "hb"), "b") == NOW + FIRST_DEADLINE_MS
    assert store.set_presence(conn("ghost"), "active", None, NOW, NOW + 1) == (None, False)
    assert store.r.zscore(keys.SWEEP, f"{W}|ghost") is None  # the index is never written for the gone


def _batch(store: Store, changes: list[tuple[str, str, dict[str, Any]]], at: int, threshold: int = 2) -> Any:
    return store.batch_presence(W, changes, at, threshold=threshold)


def test_a_small_workspace_posts_presence_directly(store: Store) -> None:
    joined(store, conn("a"))
    assert _batch(store, [("presence.joined", "ann", {"user_id": "ann"})], NOW) == ("direct", [])
    assert _batch(store, [], NOW) == ("none", [])
    assert store.workspaces_with_batches(NOW + 10_000) == []


def test_a_large_workspace_holds_presence_for_its_interval(store: Store) -> None:
    joined(store, conn("a"))
    joined(store, conn("b", "bob"))
    first: list[tuple[str, str, dict[str, Any]]] = [
        ("presence.joined", "cy", {"user_id": "cy", "display_name": "C|Y", "n": 1}),
        ("presence.updated", "dee", {"s": "é"}),
    ]
    assert _batch(store, first, NOW) == ("held", [])
    assert store.r.zscore(keys.PRESENCE_BATCHES, W) == NOW
    assert store.r.hget(keys.ws(W, "presence_batch"), "dee") == b'presence.updated|{"s":"\\u00e9"}'
    assert _batch(store, [("presence.left", "eve", {})], NOW + 499) == ("held", [])
    assert store.r.zscore(keys.PRESENCE_BATCHES, W) == NOW  # nx: still when it began
    mode, out = _batch(store, [], NOW + 500)
    assert mode == "flush"
    assert sorted(out) == [
        ("presence.joined", "cy", {"user_id": "cy", "display_name": "C|Y", "n": 1}),
        ("presence.left", "eve", {}),
        ("presence.updated", "dee", {"s": "é"}),
    ]
    assert store.r.zscore(keys.PRESENCE_BATCHES, W) is None
    assert _batch(store, [], NOW + 1_000) == ("none", [])
    assert (
        store.batch_presence(W, [("presence.left", "x", {})], NOW, threshold=2, interval_ms=0)[0] == "flush"
    )


# -- editing indicators --------------------------------------------------------------------------
def test_editing_indicators_expire_with_their_latest(store: Store) -> None:
    joined(store, conn("a"))
    store.set_editing(W, "ann", {"task_id": "t1", "field": "title", "cid": "a", "exp": NOW + 10}, 10_000)
    store.set_editing(W, "bob", {"task_id": "t2", "field": "title", "cid": "b", "exp": NOW + 20}, 20_000)
    assert 19_000 < pttl(store.r, keys.ws(W, "editing")) <= 20_000
    with counting() as wire:
        entries, editing = store.presence_and_editing(W, NOW + 10)
    assert wire.round_trips == 1
    assert entries == {"ann": entry("Ann")}
    assert editing == {"bob": {"task_id": "t2", "field": "title", "cid": "b", "exp": NOW + 20}}
    assert set(store.presence_and_editing(W, NOW + 9)[1]) == {"ann", "bob"}
    assert store.clear_editing(W, {"b", "zz"}) == ["bob"]
    assert store.clear_editing(W, {"zz"}) == []
    assert set(store.r.hkeys(keys.ws(W, "editing"))) == {b"ann"}


def test_clearing_several_indicators_lists_their_users_in_order(store: Store) -> None:
    for uid, cid in (("zed", "c1"), ("amy", "c2"), ("bob", "c3")):
        store.set_editing(W, uid, {"task_id": "t", "field": "title", "cid": cid, "exp": NOW}, 1_000)
    assert store.clear_editing(W, {"c1", "c2"}) == ["amy", "zed"]
    assert store.r.hkeys(keys.ws(W, "editing")) == [b"bob"]


# -- history ---------------------------------------------------------------------------------------
def test_append_event_keeps_the_latest_hundred_small_events(store: Store) -> None:
    joined(store, conn("a"))
    for seq in range(1, HISTORY_LEN + 3):
        assert store.append_event(W, seq, json.dumps({"seq": seq})) == ["a"]
    history = store.history(W, 0)
    assert [s for s, _ in history] == list(range(3, HISTORY_LEN + 3))
    assert store.history(W, HISTORY_LEN + 1) == [(HISTORY_LEN + 2, json.dumps({"seq": HISTORY_LEN + 2}))]
    assert HISTORY_TTL_MS - 2_000 < pttl(store.r, keys.ws(W, "history")) <= HISTORY_TTL_MS
    big = json.dumps({"seq": 500, "pad": "x" * HISTORY_EVENT_MAX_BYTES})
    assert store.append_event(W, 500, big) == ["a"]
    assert store.history(W, HISTORY_LEN + 2) == []
    edge = '"' + "y" * (HISTORY_EVENT_MAX_BYTES - 2) + '"'
    store.append_event(W, 501, edge)
    assert store.history(W, 500) == [(501, edge)]


def test_append_event_records_the_answer_in_the_same_round_trip(store: Store) -> None:
    joined(store, conn("a"))
    store.begin("ann", bucket="rl", limit=10, window_ms=60_000, now_ms=NOW, request_id="r1")
    store._load_scripts()
    with counting() as wire:
        targets = store.append_event(W, 1, '{"seq":1}', answer=("ann", "r1", '{"ack":1}'))
    assert wire.round_trips == 1 and targets == ["a"]
    assert store.request_answer("ann", "r1") == '{"ack":1}'
    assert REQUEST_TTL_S - 2 < store.r.ttl(keys.user("ann", "req:r1")) <= REQUEST_TTL_S
    store.append_event(W, 2, '{"seq":2}', answer=("ann", "unclaimed", "x"))
    assert store.request_answer("ann", "unclaimed") is None  # xx: only a claimed request
    assert store.history(W, 0) == [(1, '{"seq":1}'), (2, '{"seq":2}')]


# -- housekeeping -------------------------------------------------------------------------------
def test_drop_workspace_deletes_its_state_and_only_its(store: Store) -> None:
    a = joined(store, conn("a"))
    joined(store, conn("b", wid=W2))
    store.set_presence(a, "away", None, NOW, NOW + 1)
    store.append_event(W, 1, "{}")
    store.hold_leave(W, "zed", {}, NOW)
    store.set_editing(W, "ann", {"cid": "a", "exp": NOW}, 10_000)
    store.r.hset(keys.ws(W, "presence_batch"), "~since", NOW)
    store.r.set(keys.ws(W, "large"), 1)
    store.drop_workspace(W)
    left = {k.decode() for k in store.r.keys(f"collab:{{w:{W}}}:*")}
    assert left == {keys.ws(W, "conns"), keys.ws(W, "hb")}  # connections go with their own removal
    assert store.r.exists(keys.ws(W2, "joined"))
    assert store.ping() is True


def test_a_workspace_stays_large_for_ten_minutes_after_it_was(store: Store) -> None:
    """Through a reconnect storm its connections are briefly few: its changes are still batched."""
    joined(store, conn("a"))
    b = joined(store, conn("b", "bob"))
    assert _batch(store, [("presence.updated", "ann", {})], NOW)[0] == "held"
    assert 599_000 < pttl(store.r, keys.ws(W, "large")) <= 600_000
    assert _batch(store, [], NOW + 500)[0] == "flush"
    store.remove_connections(W, [b.connection_id])  # one synced connection left, under the threshold
    assert _batch(store, [("presence.left", "bob", {})], NOW + 600)[0] == "held"
    store.r.delete(keys.ws(W, "large"), keys.ws(W, "presence_batch"))  # ten minutes later
    assert _batch(store, [("presence.updated", "ann", {})], NOW + 700)[0] == "direct"
