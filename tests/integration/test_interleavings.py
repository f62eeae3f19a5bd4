"""Races made deterministic: one transaction is held open before its COMMIT (its row locks held)
while another runs into it, so the interleaving the product must survive happens every run,
not once in a thousand.

Each test names the bug it exists to catch: a reviewer's "what if this line were different".
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from collab.adapters.postgres.database import Database
from collab.domain import notifications, tasks
from collab.errors import Conflict
from collab.protocol.client_frames import TaskDraft

LOCK_WAIT_S = 30  # generous: on a loaded 2-core machine a backend can take a while to reach the lock


class HeldDatabase:
    """A :class:`Database` whose next transaction stops just before COMMIT until released."""

    def __init__(self, dsn: str) -> None:
        self.db = Database(dsn)
        self.reached = threading.Event()
        self.release = threading.Event()

    def run(self, fn: Any) -> Any:
        def held(cur: Any) -> Any:
            out = fn(cur)
            self.reached.set()
            assert self.release.wait(LOCK_WAIT_S), "never released"
            return out

        return self.db.run(held)

    def close(self) -> None:
        self.db.close()


class InThread:
    """Run ``fn`` in a thread; ``result()`` returns its value or raises what it raised."""

    def __init__(self, fn: Any) -> None:
        self.value: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self.thread.start()

    def _run(self, fn: Any) -> None:
        try:
            self.value = fn()
        except BaseException as exc:
            self.error = exc

    def result(self) -> Any:
        self.thread.join(LOCK_WAIT_S)
        assert not self.thread.is_alive(), "still running"
        if self.error is not None:
            raise self.error
        return self.value


def wait_until_a_transaction_waits_for_a_lock(rt: Any, *, database: str | None = None) -> None:
    """Until a backend of this test's database (or of ``database``, another of the cluster) is
    blocked on a lock (pg_stat_activity says so)."""
    deadline = time.monotonic() + LOCK_WAIT_S
    query = (
        "SELECT count(*) AS n FROM pg_stat_activity"
        " WHERE datname = coalesce(%s, current_database()) AND wait_event_type = 'Lock'"
    )
    while time.monotonic() < deadline:
        if rt.db.run(lambda cur: cur.execute(query, (database,)).fetchone()["n"]) > 0:
            return
        time.sleep(0.01)
    raise AssertionError("no transaction came to wait for the held lock")


@pytest.fixture
def second(settings: Any) -> Any:
    db = Database(settings.dsn)
    yield db
    db.close()


def test_two_patches_with_the_same_base_version_cannot_both_commit(rt, wid, held, second):
    """Kills: the conditional update without its row lock (``FOR UPDATE OF o``). Without it, the
    second patch's check reads the version from before the first commit: both commit, one is lost."""
    task = tasks.create(rt.db, "alice", TaskDraft(title="v1"), workspace_id=wid).task
    assert task["version"] == 1

    # Given alice's patch on version 1, committed-to-be: its row lock is held
    first = InThread(lambda: tasks.update(held, "alice", task["id"], {"title": "alice's"}, base_version=1))
    assert held.reached.wait(LOCK_WAIT_S)
    # When bob patches version 1 too, and comes to wait for that lock
    late = InThread(lambda: tasks.update(second, "bob", task["id"], {"title": "bob's"}, base_version=1))
    wait_until_a_transaction_waits_for_a_lock(rt)
    held.release.set()

    # Then alice's commits, and bob's is refused with the task as alice left it
    assert first.result().task["version"] == 2
    with pytest.raises(Conflict) as refused:
        late.result()
    assert refused.value.to_wire()["task"]["title"] == "alice's"
    final = tasks.get(rt.db, "alice", task["id"])
    assert (final["title"], final["version"]) == ("alice's", 2)


def test_concurrent_edits_of_different_tasks_take_distinct_contiguous_seqs(rt, wid, held, second):
    """Kills: the workspace's seq taken by a read and then a write. Writers of one task are ordered
    by its row lock; writers of different tasks meet only at the workspace row, whose
    ``last_seq = last_seq + 1`` must be read and written in one locked step."""
    one = tasks.create(rt.db, "alice", TaskDraft(title="one"), workspace_id=wid)
    two = tasks.create(rt.db, "alice", TaskDraft(title="two"), workspace_id=wid)
    base = one.seq  # adding bob to the workspace took seq 1
    assert two.seq == base + 1

    # Given an edit of task one, holding the workspace row (its seq taken, not yet committed)
    first = InThread(lambda: tasks.update(held, "alice", one.task["id"], {"title": "one'"}))
    assert held.reached.wait(LOCK_WAIT_S)
    # When bob edits task two meanwhile
    late = InThread(lambda: tasks.update(second, "bob", two.task["id"], {"title": "two'"}))
    wait_until_a_transaction_waits_for_a_lock(rt)
    held.release.set()

    # Then both commit, with the next two seqs, and the log agrees
    assert sorted([first.result().seq, late.result().seq]) == [base + 2, base + 3]
    seqs = rt.db.run(
        lambda cur: [
            r["seq"]
            for r in cur.execute("SELECT seq FROM activity WHERE workspace_id = %s ORDER BY seq", (wid,))
        ]
    )
    last = rt.db.run(
        lambda cur: cur.execute("SELECT last_seq FROM workspaces WHERE id = %s", (wid,)).fetchone()[
            "last_seq"
        ]
    )
    assert (seqs, last) == (list(range(1, base + 4)), base + 3)


def test_an_edit_committed_while_a_connection_takes_its_first_sync_reaches_it(world, monkeypatch):
    """Kills: announcing a connection (making it a fan-out target) only after its first sync read
    the workspace's last seq. An edit committed in between is then in neither the sync reply nor
    the fan-out: lost for that client until some later edit makes it notice the gap."""
    wid = world.workspace("ann", "bob")
    ann = world.connect("ann", wid)
    task = ann.create("before")["data"]["task"]
    bob = world.connect("bob", wid, sync=False)

    real = notifications.claim_undelivered
    edits: list[dict[str, Any]] = []

    def claim_after_an_edit(cur: Any, user_id: str, budget: int | None = None) -> Any:
        # Inside bob's sync transaction, after it read last_seq: ann's edit commits now, from another
        # container (thread), and is published to the workspace's fan-out targets at that moment.
        if user_id == "bob" and not edits:
            InThread(lambda: edits.append(ann.update(task["id"], title="during the sync"))).result()
        return real(cur, user_id, budget)

    monkeypatch.setattr(notifications, "claim_undelivered", claim_after_an_edit)
    reply = bob.send({"action": "sync", "since": None})
    assert reply is not None and reply["type"] == "sync"
    [edit] = edits
    assert edit["data"]["ok"] is True
    edit_seq = edit["data"]["seq"]

    # bob knows the workspace up to the reply's seq, and every event posted to him after it
    known = reply["data"]["seq"]
    posted = sorted(f["seq"] for f in bob.received("task.updated"))
    assert known >= edit_seq or edit_seq in posted, (known, posted, edit_seq)
