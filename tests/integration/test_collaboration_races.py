"""v1.3 under concurrency, made deterministic as in test_interleavings.py: one transaction is held
before its COMMIT while another runs into its row lock. Each test names the bug it would catch."""

from __future__ import annotations

from typing import Any

import pytest
from test_interleavings import LOCK_WAIT_S, InThread, wait_until_a_transaction_waits_for_a_lock

from collab.adapters.postgres.database import Database
from collab.domain import tasks, undo
from collab.errors import Conflict
from collab.protocol.client_frames import TaskDraft


@pytest.fixture
def second(settings: Any) -> Any:
    db = Database(settings.dsn)
    yield db
    db.close()


def test_of_two_racing_edits_from_one_version_the_later_commit_gets_the_receipt(rt, wid, held, second):
    """Kills: the receipt computed from a read taken before the row lock (the one-statement update's
    ``before`` values read outside its ``FOR UPDATE``): bob's receipt would miss alice's change."""
    task = tasks.create(rt.db, "alice", TaskDraft(title="v1"), workspace_id=wid).task
    first = InThread(lambda: tasks.update(held, "alice", task["id"], {"status": "done"}, seen_version=1))
    assert held.reached.wait(LOCK_WAIT_S)
    late = InThread(
        lambda: tasks.update(second, "bob", task["id"], {"status": "in_progress"}, seen_version=1)
    )
    wait_until_a_transaction_waits_for_a_lock(rt)
    held.release.set()

    assert first.result().overwrote == []
    bobs = late.result()
    assert [(o["field"], o["value"], o["by"]["id"], o["version"]) for o in bobs.overwrote] == [
        ("status", "done", "alice", 2)
    ]
    assert [uid for uid, _ in bobs.committed.notices] == ["alice"]  # alice's change is seconds old
    assert tasks.get(rt.db, "alice", task["id"])["status"] == "in_progress"


def test_an_edit_that_commits_while_an_undo_waits_makes_the_undo_a_conflict(rt, wid, held, second):
    """Kills: the undo's check read before it locks the task: it would revert over bob's change."""
    task = tasks.create(rt.db, "alice", TaskDraft(title="v1"), workspace_id=wid).task
    change = tasks.update(rt.db, "alice", task["id"], {"title": "alice's"})
    bobs = InThread(lambda: tasks.update(held, "bob", task["id"], {"title": "bob's"}))
    assert held.reached.wait(LOCK_WAIT_S)
    late = InThread(lambda: undo.revert(second, "alice", wid, int(change.seq), redo=False))
    wait_until_a_transaction_waits_for_a_lock(rt)
    held.release.set()

    assert bobs.result().task["title"] == "bob's"
    with pytest.raises(Conflict) as refused:
        late.result()
    assert refused.value.to_wire()["task"]["title"] == "bob's"
    assert tasks.get(rt.db, "alice", task["id"])["title"] == "bob's"


def test_an_undo_that_commits_first_is_then_overwritten_by_the_waiting_edit(rt, wid, held, second):
    """The other order: the undo commits, bob's edit (waiting on the lock) applies after it; with
    seen_version from before the undo, bob's receipt names the undo as what it overwrote."""
    task = tasks.create(rt.db, "alice", TaskDraft(title="v1"), workspace_id=wid).task
    change = tasks.update(rt.db, "alice", task["id"], {"title": "alice's"})
    first = InThread(lambda: undo.revert(held, "alice", wid, int(change.seq), redo=False))
    assert held.reached.wait(LOCK_WAIT_S)
    late = InThread(lambda: tasks.update(second, "bob", task["id"], {"title": "bob's"}, seen_version=2))
    wait_until_a_transaction_waits_for_a_lock(rt)
    held.release.set()

    assert first.result().task["title"] == "v1"
    bobs = late.result()
    assert [(o["value"], o["by"]["id"]) for o in bobs.overwrote] == [("v1", "alice")]
    assert tasks.get(rt.db, "alice", task["id"])["title"] == "bob's"


def test_two_people_typing_in_one_description_at_once_both_keep_their_text(rt, wid, held, second):
    """Kills: the merge's base or current text read before the row lock (the later writer would
    merge against a description that is no longer the task's, dropping the first writer's text)."""
    base = "Goals.\n\nRisks.\n\nDates."
    task = tasks.create(rt.db, "alice", TaskDraft(title="v1", description=base), workspace_id=wid).task
    alices = base.replace("Goals.", "Goals: ship v1.3.")
    bobs = base.replace("Dates.", "Dates: March.")
    first = InThread(lambda: tasks.update(held, "alice", task["id"], {"description": alices}, seen_version=1))
    assert held.reached.wait(LOCK_WAIT_S)
    late = InThread(lambda: tasks.update(second, "bob", task["id"], {"description": bobs}, seen_version=1))
    wait_until_a_transaction_waits_for_a_lock(rt)
    held.release.set()

    first.result()
    m = late.result()
    assert m.task["description"] == "Goals: ship v1.3.\n\nRisks.\n\nDates: March."
    assert m.merged == ["description"] and m.overwrote == []
    assert tasks.get(rt.db, "bob", task["id"])["description"] == m.task["description"]
