"""The demo board for everyone, in real Chromium: keyboard operation of every action, focus kept
across remote redraws, the editor as a modal dialog, notifications by keyboard, a live status,
axe-core (from npm, packages/collab-client's dev dependencies) with zero serious or critical
violations, and a phone-sized viewport without horizontal overflow.

``COLLAB_SCREENSHOTS=docs`` makes ``test_screenshots_at_1280_and_375`` write the PNGs in docs/
(docs/board-1280.png, docs/board-375.png); otherwise they go to the test's temporary folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import test_browser
from tests.e2e.test_browser import WAIT_MS, Board, card

gw = test_browser.gw  # the demo board's fixtures: a gateway of this module's own, two members
board = test_browser.board

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "packages" / "collab-client" / "node_modules" / "axe-core" / "axe.min.js"


def focused(page: Any) -> dict[str, Any]:
    """What has keyboard focus: its test id, the task id of its card, and whether it is in the editor."""
    return dict(
        page.evaluate(
            """() => {
              const el = document.activeElement;
              const cardEl = el && el.closest('[data-testid=task-card]');
              return {
                testid: el && el.dataset ? el.dataset.testid || el.tagName.toLowerCase() : null,
                task: cardEl ? cardEl.dataset.taskId : null,
                inEditor: Boolean(el && el.closest('[data-testid=task-editor]')),
              };
            }"""
        )
    )


def editor_open(page: Any) -> bool:
    return bool(page.evaluate("document.querySelector('[data-testid=task-editor]').open"))


def axe(page: Any) -> list[dict[str, Any]]:
    """Run axe-core on the page; its serious and critical violations (id, impact, nodes)."""
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `make client` (npm ci in packages/collab-client)", pytrace=False)
    page.add_script_tag(content=AXE.read_text())
    result = page.evaluate(
        "async () => { const r = await axe.run(document, { resultTypes: ['violations'] });"
        " return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map((n) => n.target.join(' ')) })); }"
    )
    return [v for v in result if v["impact"] in ("serious", "critical")]


# -- keyboard --------------------------------------------------------------------------------------
def test_enter_and_space_open_the_editor_without_submitting_it_and_escape_returns_focus(board: Board) -> None:
    task_id = board.seed_task("By keyboard")
    a = board.open(board.alice)
    card(a, "By keyboard").focus()
    for key in ("Enter", " "):
        a.keyboard.press(key)
        a.wait_for_function("document.querySelector('[data-testid=task-editor]').open", timeout=WAIT_MS)
        # the key opened the editor and did not submit it: focus in the title, nothing sent
        assert focused(a) == {"testid": "edit-title", "task": None, "inEditor": True}
        assert a.evaluate("window.collab.client.pendingOps") == 0
        a.keyboard.press("Escape")
        a.wait_for_function("!document.querySelector('[data-testid=task-editor]').open", timeout=WAIT_MS)
        assert focused(a)["task"] == task_id  # focus is back on the card


def test_tab_stays_inside_the_editor_dialog(board: Board) -> None:
    board.seed_task("Trapped")
    a = board.open(board.alice)
    card(a, "Trapped").click()
    for _ in range(14):  # more than the dialog's controls, both ways
        a.keyboard.press("Tab")
        assert focused(a)["inEditor"], focused(a)
    for _ in range(14):
        a.keyboard.press("Shift+Tab")
        assert focused(a)["inEditor"], focused(a)


def test_alt_arrows_move_a_card_and_focus_follows_it(board: Board) -> None:
    task_id = board.seed_task("Mover")
    a = board.open(board.alice)
    card(a, "Mover").focus()
    a.keyboard.press("Alt+ArrowRight")
    a.locator(f"[data-testid=column-in_progress] [data-task-id='{task_id}']").wait_for(timeout=WAIT_MS)
    assert focused(a)["task"] == task_id
    a.keyboard.press("Alt+ArrowLeft")
    a.locator(f"[data-testid=column-todo] [data-task-id='{task_id}']").wait_for(timeout=WAIT_MS)
    assert focused(a)["task"] == task_id
    a.wait_for_selector("[data-testid=conn-state][data-pending='0']", timeout=WAIT_MS)
    assert board.alice.api("GET", f"/tasks/{task_id}")["status"] == "todo"


def test_focus_survives_a_remote_redraw(board: Board) -> None:
    mine = board.seed_task("Focused here")
    board.seed_task("Changed by Bob")
    a, b = board.open(board.alice), board.open(board.bob)
    button = card(a, "Focused here").locator("[data-testid=task-move-right]")
    button.focus()
    # When Bob changes another task (Alice's board redraws every card)
    card(b, "Changed by Bob").click()
    b.fill("[data-testid=edit-title]", "Changed by Bob, again")
    b.click("[data-testid=edit-save]")
    card(a, "Changed by Bob, again").wait_for(timeout=WAIT_MS)
    # Then Alice's focus is still on the same button of the same card
    assert focused(a) == {"testid": "task-move-right", "task": mine, "inEditor": False}


def test_notifications_by_keyboard_and_a_notification_opens_its_task(board: Board) -> None:
    task_id = board.seed_task("For Alice")
    a, b = board.open(board.alice), board.open(board.bob)
    # Given Bob assigns the task to Alice (she gets a notification)
    b.evaluate(
        "([id, who]) => { window.collab.client.updateTask(id, { assigned_to: who }) }",
        [task_id, board.alice.user_id],
    )
    a.wait_for_selector("[data-testid=notif-count][data-count='1']", timeout=WAIT_MS)
    # When Alice opens the panel from the keyboard, Then focus is on the notification
    a.focus("[data-testid=notif-button]")
    a.keyboard.press("Enter")
    a.wait_for_selector("[data-testid=notif-panel]:not([hidden])", timeout=WAIT_MS)
    assert focused(a)["testid"] == "notif-open"
    # And Escape closes it, focus back on the button
    a.keyboard.press("Escape")
    a.wait_for_selector("[data-testid=notif-panel][hidden]", state="attached", timeout=WAIT_MS)
    assert focused(a)["testid"] == "notif-button"
    # And Enter on the notification opens its task and marks it read
    a.keyboard.press("Enter")
    a.keyboard.press("Enter")
    a.wait_for_function("document.querySelector('[data-testid=task-editor]').open", timeout=WAIT_MS)
    assert a.input_value("[data-testid=edit-title]") == "For Alice"
    a.wait_for_selector("[data-testid=notif-count][data-count='0']", timeout=WAIT_MS)


def test_due_date_is_editable_and_shown_to_everyone(board: Board) -> None:
    task_id = board.seed_task("With a date")
    a, b = board.open(board.alice), board.open(board.bob)
    card(a, "With a date").click()
    a.fill("[data-testid=edit-due]", "2026-05-01")
    a.click("[data-testid=edit-save]")
    due = card(b, "With a date").locator("[data-testid=task-due]")
    due.wait_for(timeout=WAIT_MS)
    assert due.inner_text() == "Due 2026-05-01" and due.get_attribute("datetime") == "2026-05-01"
    assert board.alice.api("GET", f"/tasks/{task_id}")["due_date"] == "2026-05-01"


def test_the_connection_state_is_a_live_region(board: Board) -> None:
    a = board.open(board.alice)
    badge = a.locator("[data-testid=conn-state]")
    assert badge.get_attribute("role") == "status" and badge.get_attribute("aria-live") == "polite"
    assert badge.inner_text() == "Live"


# -- axe-core and small screens --------------------------------------------------------------------
def test_axe_finds_no_serious_or_critical_violations(board: Board) -> None:
    task_id = board.seed_task("Audited task", priority="low", due_date="2026-05-01")
    board.seed_task("Urgent one", priority="urgent")
    board.seed_task("High one", priority="high", status="in_progress")
    a, b = board.open(board.alice), board.open(board.bob)
    b.evaluate(
        "([id, who]) => { window.collab.client.updateTask(id, { assigned_to: who }) }",
        [task_id, board.alice.user_id],
    )
    a.wait_for_selector("[data-testid=notif-count][data-count='1']", timeout=WAIT_MS)
    summary = {}
    # The board, the notifications panel open, and the editor open
    summary["board"] = axe(a)
    a.click("[data-testid=notif-button]")
    summary["notifications"] = axe(a)
    a.keyboard.press("Escape")
    card(a, "Audited task").click()
    summary["editor"] = axe(a)
    print("axe-core serious/critical violations:", json.dumps(summary))
    assert summary == {"board": [], "notifications": [], "editor": []}


def test_no_horizontal_overflow_at_375_px_and_the_editor_is_over_the_top_bar(board: Board) -> None:
    board.seed_task("A task with a rather long title that has to wrap on a phone-sized screen")
    a = board.open(board.alice)
    a.set_viewport_size({"width": 375, "height": 740})
    a.wait_for_timeout(100)
    assert a.evaluate("document.documentElement.scrollWidth") <= 375
    bell = a.locator("[data-testid=notif-button]").bounding_box()
    assert bell is not None and bell["x"] >= 0 and bell["x"] + bell["width"] <= 375  # not cut off
    card(a, "A task with a rather long title that has to wrap on a phone-sized screen").click()
    box = a.locator("[data-testid=task-editor]").bounding_box()
    assert box is not None and box["y"] == 0 and box["width"] <= 375
    # the editor is in the top layer: the top bar's button under it cannot be clicked
    assert a.evaluate(
        "(() => { const r = document.querySelector('[data-testid=notif-button]').getBoundingClientRect();"
        " const el = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);"
        " return Boolean(el.closest('[data-testid=task-editor]')); })()"
    )
    assert axe(a) == []


def test_screenshots_at_1280_and_375(board: Board, tmp_path: Path) -> None:
    out = ROOT / os.environ["COLLAB_SCREENSHOTS"] if os.environ.get("COLLAB_SCREENSHOTS") else tmp_path
    board.seed_task("Write the release notes", priority="high", due_date="2026-05-01")
    board.seed_task("Fix the login redirect", priority="urgent", status="in_progress")
    board.seed_task("Update the onboarding doc", priority="low")
    board.seed_task("Ship v1.2", priority="medium", status="done")
    a, b = board.open(board.alice), board.open(board.bob)
    card(b, "Fix the login redirect").click()  # Bob is viewing a task: Alice sees it on the card
    card(a, "Fix the login redirect").locator("[data-testid=task-viewers]").wait_for(timeout=WAIT_MS)
    a.screenshot(path=str(out / "board-1280.png"))
    a.set_viewport_size({"width": 375, "height": 812})
    a.wait_for_timeout(100)
    a.screenshot(path=str(out / "board-375.png"), full_page=True)
    for name in ("board-1280.png", "board-375.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
