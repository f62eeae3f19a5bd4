"""``sync`` at its edges: a client already up to date, a Redis history that lost the latest events,
or only the one event right after the client's seq."""

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
