"""``sync`` at its edges: a client already up to date, a Redis history that lost the latest events,
only the one event right after the client's seq, or a log pruned by retention past it."""

from __future__ import annotations

from collab.adapters.redis import keys


def setup(world, n=5):
    wid = world.workspace("ann", "bob")
    ann, bob = world.connect("ann", wid), world.connect("bob", wid)
    for i in range(n):
        assert ann.create(f"t{i}")["data"]["ok"] is True
    return wid, bob


def seqs(reply):
    assert reply["data"]["resync"] is False
    return [e["seq"] for e in reply["data"]["events"]]


def test_a_client_up_to_date_gets_nothing_and_no_resync(world):
    _, bob = setup(world)
    reply = bob.send({"action": "sync", "since": 5})
    assert (seqs(reply), reply["data"]["seq"]) == ([], 5)


def test_a_history_that_lost_everything_is_filled_from_postgres(world):
    wid, bob = setup(world)
    world.rt.store.r.delete(keys.ws(wid, "history"))  # a Redis restart, say
    assert seqs(bob.send({"action": "sync", "since": 1})) == [2, 3, 4, 5]
    assert seqs(bob.send({"action": "sync", "since": 4})) == [5]


def test_a_history_missing_its_latest_event_is_filled_from_postgres(world):
    wid, bob = setup(world)
    world.rt.store.r.zremrangebyscore(keys.ws(wid, "history"), 5, 5)  # committed, not yet in Redis
    assert seqs(bob.send({"action": "sync", "since": 2})) == [3, 4, 5]


def test_one_event_missing_right_after_the_clients_seq_comes_from_postgres(world):
    wid, bob = setup(world)
    world.rt.store.r.zremrangebyscore(keys.ws(wid, "history"), 2, 2)
    assert seqs(bob.send({"action": "sync", "since": 1})) == [2, 3, 4, 5]


def _prune_activity(world, wid, through):
    """What retention does to an old log: its oldest rows are gone."""
    world.rt.db.run(
        lambda cur: cur.execute("DELETE FROM activity WHERE workspace_id = %s AND seq <= %s", (wid, through))
    )


def test_a_log_pruned_past_the_clients_seq_asks_for_a_resync(world):
    """Redis has lost its history and retention has deleted seqs 1-3: a client at seq 1 cannot be
    brought up to date by replay (seq 2 is gone), so it must be told to resync, not handed 4 and 5
    as if nothing were missing, nor told it is up to date."""
    wid, bob = setup(world)
    world.rt.store.r.delete(keys.ws(wid, "history"))
    _prune_activity(world, wid, 3)
    data = bob.send({"action": "sync", "since": 1})["data"]
    assert (data["resync"], data["events"], data["seq"]) == (True, [], 5)
    assert seqs(bob.send({"action": "sync", "since": 3})) == [4, 5]  # what is left still replays


def test_a_log_pruned_entirely_asks_for_a_resync(world):
    wid, bob = setup(world)
    world.rt.store.r.delete(keys.ws(wid, "history"))
    _prune_activity(world, wid, 5)
    data = bob.send({"action": "sync", "since": 2})["data"]
    assert (data["resync"], data["events"], data["seq"]) == (True, [], 5)
