"""The board's v1.3 collaboration features in real Chromium, two users, real handlers behind the
local gateway: conflict receipts and their toasts, undo/redo from the keyboard (and its refusal),
the task panel's history and provenance, editing indicators on cards, descriptions typed by two
people at once, and the durable outbox (an edit made offline survives a closed tab and lands once).

The fixtures are test_browser.py's (one gateway per module, fresh users and workspace per test).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.e2e import test_browser
from tests.e2e.test_browser import WAIT_MS, Board, card

# test_browser.py's fixtures: its gateway (one per module) and the two-user board
gw = test_browser.gw
board = test_browser.board

pytestmark = pytest.mark.e2e

TOAST = "[data-testid=toast]"


def task(board: Board, task_id: str) -> dict[str, Any]:
    return dict(board.alice.api("GET", f"/tasks/{task_id}"))


def wait_task(board: Board, task_id: str, **expected: Any) -> dict[str, Any]:
    """Poll the API until the task has the expected fields (the board saves asynchronously)."""
    import time

    deadline = time.monotonic() + WAIT_MS / 1000
    current = task(board, task_id)
    while any(current.get(k) != v for k, v in expected.items()) and time.monotonic() < deadline:
        time.sleep(0.1)
        current = task(board, task_id)
    assert {k: current.get(k) for k in expected} == expected
    return current


def toast_with(page: Any, pattern: str) -> Any:
    locator = page.locator(TOAST, has_text=re.compile(pattern))
    locator.first.wait_for(timeout=WAIT_MS)
    return locator.first


def open_task(page: Any, title: str) -> None:
    card(page, title).first.click()
    page.wait_for_selector("[data-testid=task-editor][open]", timeout=WAIT_MS)


def test_a_concurrent_edit_gives_a_receipt_toast_with_undo_and_the_other_user_a_put_mine_back(
    board: Board,
) -> None:
    task_id = board.seed_task("Plan the launch")
    a, b = board.open(board.alice), board.open(board.bob)
    card(b, "Plan the launch").wait_for(timeout=WAIT_MS)

    # Alice opens the task (the title has focus: she is looking at version 1) ...
    open_task(a, "Plan the launch")
    # ... meanwhile Bob renames it ...
    open_task(b, "Plan the launch")
    b.fill("[data-testid=edit-title]", "Plan the launch (Bob)")
    b.click("[data-testid=edit-save]")
    wait_task(board, task_id, title="Plan the launch (Bob)")
    # ... and Alice, still on what she saw, renames it too: her change wins, and says what it replaced.
    a.wait_for_function(
        "document.querySelector('[data-testid=edit-title]').value === 'Plan the launch (Bob)'",
        timeout=WAIT_MS,
    )
    a.fill("[data-testid=edit-title]", "Plan the launch (Alice)")
    a.click("[data-testid=edit-save]")
    wait_task(board, task_id, title="Plan the launch (Alice)")

    receipt = toast_with(a, r"You overwrote Bob Chen's title \(Plan the launch \(Bob\)\)")
    notice = toast_with(
        b, r"Alice Martin changed the title you set \(Plan the launch \(Bob\) → Plan the launch \(Alice\)\)"
    )
    assert notice.locator("[data-testid=toast-action]").inner_text() == "Put mine back"

    # Undo on Alice's receipt puts Bob's title back.
    receipt.locator("[data-testid=toast-action]").click()
    wait_task(board, task_id, title="Plan the launch (Bob)")
    card(b, "Plan the launch (Bob)").wait_for(timeout=WAIT_MS)


def test_put_mine_back_restores_the_overwritten_value(board: Board) -> None:
    task_id = board.seed_task("Fix the login")
    a, b = board.open(board.alice), board.open(board.bob)
    open_task(a, "Fix the login")
    a.focus("[data-testid=edit-status]")  # Alice starts on the status at version 1
    open_task(b, "Fix the login")
    b.select_option("[data-testid=edit-status]", "done")
    b.click("[data-testid=edit-save]")
    wait_task(board, task_id, status="done")
    a.select_option("[data-testid=edit-status]", "in_progress")
    a.click("[data-testid=edit-save]")
    wait_task(board, task_id, status="in_progress")

    toast_with(a, r"You overwrote Bob Chen's status \(Done\)")
    notice = toast_with(b, r"Alice Martin changed the status you set \(Done → In progress\)")
    notice.locator("[data-testid=toast-action]").click()
    wait_task(board, task_id, status="done")


def test_ctrl_z_undoes_shift_ctrl_z_redoes_and_undo_is_refused_when_the_field_moved_on(board: Board) -> None:
    task_id = board.seed_task("Draft")
    a = board.open(board.alice)
    open_task(a, "Draft")
    a.fill("[data-testid=edit-title]", "Draft v2")
    a.click("[data-testid=edit-save]")
    wait_task(board, task_id, title="Draft v2")
    a.wait_for_function("window.collab.client.getSnapshot().undoStack.length === 1", timeout=WAIT_MS)

    card(a, "Draft v2").focus()
    a.keyboard.press("Control+z")
    wait_task(board, task_id, title="Draft")
    card(a, "Draft").wait_for(timeout=WAIT_MS)
    a.wait_for_function("window.collab.client.getSnapshot().redoStack.length === 1", timeout=WAIT_MS)

    card(a, "Draft").focus()
    a.keyboard.press("Control+Shift+z")
    wait_task(board, task_id, title="Draft v2")
    a.wait_for_function("window.collab.client.getSnapshot().undoStack.length === 1", timeout=WAIT_MS)

    # Bob changes the title since: Alice's undo is refused, and nothing changes.
    board.bob.api("PATCH", f"/tasks/{task_id}", {"title": "Draft by Bob"})
    card(a, "Draft by Bob").wait_for(timeout=WAIT_MS)
    card(a, "Draft by Bob").focus()
    a.keyboard.press("Control+z")
    toast_with(a, r"Can't undo: Bob Chen changed the title since")
    assert task(board, task_id)["title"] == "Draft by Bob"
    assert a.evaluate("window.collab.client.getSnapshot().undoStack.length") == 0

    # The task panel: who changed what last, and the history with the field diffs, newest first.
    open_task(a, "Draft by Bob")
    a.wait_for_selector("[data-testid=provenance-item][data-field=title]", timeout=WAIT_MS)
    assert re.match(
        r"Bob Chen changed the title (just now|\d+ min ago)", a.inner_text("[data-testid=provenance-item]")
    )
    items = a.locator("[data-testid=history-item]")
    a.wait_for_function(
        "document.querySelectorAll('[data-testid=history-item]').length === 5", timeout=WAIT_MS
    )
    texts = items.all_inner_texts()
    assert texts[0].startswith("Bob Chen changed: title Draft v2 → Draft by Bob")
    assert texts[1].startswith("Alice Martin redid: title Draft → Draft v2")
    assert texts[2].startswith("Alice Martin undid: title Draft v2 → Draft")
    assert texts[3].startswith("Alice Martin changed: title Draft → Draft v2")
    assert texts[4].startswith("Alice Martin created it")


def test_editing_appears_on_the_card_and_disappears_on_blur_and_on_disconnect(board: Board) -> None:
    board.seed_task("Shared card")
    a, b = board.open(board.alice), board.open(board.bob)
    indicator = card(a, "Shared card").locator("[data-testid=task-editing]")
    assert indicator.count() == 0

    open_task(b, "Shared card")  # the title gets focus
    indicator.wait_for(timeout=WAIT_MS)
    assert indicator.inner_text() == "Bob Chen is editing the title"
    b.focus("[data-testid=edit-description]")
    card(a, "Shared card").locator("[data-testid=task-editing]", has_text="editing the description").wait_for(
        timeout=WAIT_MS
    )
    b.click("[data-testid=edit-close]")  # blur and close: gone at once
    indicator.wait_for(state="detached", timeout=WAIT_MS)

    open_task(b, "Shared card")
    indicator.wait_for(timeout=WAIT_MS)
    b.close()  # the connection closing clears it too
    indicator.wait_for(state="detached", timeout=WAIT_MS)


def test_two_people_typing_in_the_same_description_keep_both_texts(board: Board) -> None:
    task_id = board.seed_task("Write the spec", description="The spec covers the API.")
    a, b = board.open(board.alice), board.open(board.bob)
    open_task(a, "Write the spec")
    open_task(b, "Write the spec")
    # Bob types at the end (not saved yet), Alice at the start and saves first.
    b.focus("[data-testid=edit-description]")
    b.fill("[data-testid=edit-description]", "The spec covers the API. Bob adds the errors.")
    a.focus("[data-testid=edit-description]")
    a.fill("[data-testid=edit-description]", "Summary first. The spec covers the API.")
    a.click("[data-testid=edit-save]")
    wait_task(board, task_id, description="Summary first. The spec covers the API.")
    b.click("[data-testid=edit-save]")
    merged = "Summary first. The spec covers the API. Bob adds the errors."
    wait_task(board, task_id, description=merged)
    toast_with(b, "Your description was merged")
    # Both boards show the merged text.
    for page in (a, b):
        open_task(page, "Write the spec")
        page.wait_for_function(
            "(text) => document.querySelector('[data-testid=edit-description]').value === text",
            arg=merged,
            timeout=WAIT_MS,
        )


def test_an_edit_made_offline_survives_a_closed_tab_and_lands_once(board: Board) -> None:
    task_id = board.seed_task("Pack the bags")
    a = board.open(board.alice)
    context = a.context
    context.set_offline(True)
    a.wait_for_selector("[data-testid=conn-state][data-state=offline]", timeout=WAIT_MS)
    open_task(a, "Pack the bags")
    a.fill("[data-testid=edit-title]", "Pack the bags tonight")
    a.click("[data-testid=edit-save]")
    a.wait_for_selector("[data-testid=outbox-item][data-sent=false]", timeout=WAIT_MS)
    assert "Pack the bags tonight" in a.inner_text("[data-testid=outbox-list]")
    a.evaluate("window.collab.client.persisted()")  # written to IndexedDB
    a.close()
    assert task(board, task_id)["title"] == "Pack the bags"  # nothing reached the server

    context.set_offline(False)
    again = context.new_page()
    again.goto(
        f"{board.gw.http_url}/?{urlencode({'token': board.alice.token, 'workspace': board.workspace_id})}"
    )
    wait_task(board, task_id, title="Pack the bags tonight")
    again.wait_for_selector("[data-testid=outbox]", state="hidden", timeout=WAIT_MS)
    again.evaluate("window.collab.client.persisted()")
    assert again.evaluate("window.collab.client.pendingOps") == 0

    # A reload now sends nothing again: the change landed once.
    again.reload()
    again.wait_for_selector("[data-testid=conn-state][data-state=live]", timeout=WAIT_MS)
    history = board.alice.api("GET", f"/tasks/{task_id}/history")["items"]
    assert [(e["kind"], e["changes"].get("title", {}).get("to")) for e in history] == [
        ("update", "Pack the bags tonight"),
        ("create", "Pack the bags"),
    ]
