"""examples/react-board (React + Vite + TanStack Query on @collab/client/react), type-checked,
built with Vite and used in Chromium by two members against the real handlers.

Needs `make example` (npm ci in examples/react-board; `make test` runs it first). The build goes
to a temporary folder that this module's gateway serves at / in place of web/, so the app's /api
and WebSocket calls go to its own origin as they would in production.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEST_JWT_SECRET
from tests.e2e import test_browser
from tests.e2e.conftest import real_functions_env
from tests.e2e.harness import RunningGateway
from tests.e2e.test_browser import WAIT_MS, Board, card

board = test_browser.board  # two members of a workspace, pages opened on this module's gateway

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "react-board"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`tsc --noEmit` (strict) and `vite build` of the example, once for the module."""
    if not (EXAMPLE / "node_modules" / "vite").exists():
        pytest.fail("examples/react-board has no node_modules: run `make example`", pytrace=False)
    out = tmp_path_factory.mktemp("react-board")
    for args in (
        ["node_modules/typescript/bin/tsc", "--noEmit"],
        ["node_modules/vite/bin/vite.js", "build", "--outDir", str(out)],
    ):
        run = subprocess.run(["node", *args], cwd=EXAMPLE, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stdout + run.stderr
    return out


@pytest.fixture(scope="module")
def gw(service_urls: dict[str, str], built: Path) -> Iterator[RunningGateway]:
    """The real functions behind a gateway that serves the built example at / (its /api and /ws are
    the same origin's, as under API Gateway and a CDN in front of the app)."""
    with pytest.MonkeyPatch.context() as mp:
        real_functions_env(mp, service_urls, TEST_JWT_SECRET)
        gateway = RunningGateway(sweep_interval_s=None, web_dir=built).start()
        yield gateway
        gateway.stop()


def open_example(board: Board, user: Any) -> Any:
    """The example as ``user``; its page errors are collected on ``page.errors``."""
    page = board.open(user)  # the board fixture's opener: the gateway serves the example at /
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    return page


def test_the_react_example_shows_and_changes_the_board_live(board: Board, built: Path) -> None:
    keep = board.seed_task("Untouched")
    board.seed_task("Seeded")
    a, b = open_example(board, board.alice), open_example(board, board.bob)
    # The workspace's name comes from TanStack Query (GET /workspaces/{id} through client.api)
    a.wait_for_selector("[data-testid=workspace-name]:text('E2E board')", timeout=WAIT_MS)
    card(b, "Seeded").wait_for(timeout=WAIT_MS)
    renders_before = a.evaluate("(id) => window.__renders[id]", keep)

    # When Alice adds a task (the mutation's promise resolves with the committed task)
    a.fill("[data-testid=new-task-title]", "From React")
    a.click("[data-testid=new-task-submit]")
    # Then Bob sees it, moves it, and Alice sees it move
    card(b, "From React").wait_for(timeout=WAIT_MS)
    card(b, "From React").locator("[data-testid=task-move-right]").click()
    a.locator("[data-testid=column-in_progress] [data-testid=task-card]", has_text="From React").wait_for(
        timeout=WAIT_MS
    )
    a.wait_for_selector("[data-testid=conn-state][data-state=live]", timeout=WAIT_MS)
    b.wait_for_selector("[data-testid=conn-state]:not(:has-text('unsaved'))", timeout=WAIT_MS)

    # And the card nobody touched was not rendered again (stable identity + memo)
    assert a.evaluate("(id) => window.__renders[id]", keep) == renders_before
    # Presence shows both members
    a.locator(f"[data-testid=presence-item][data-user-id='{board.bob.user_id}']").wait_for(timeout=WAIT_MS)
    assert a.errors == [] and b.errors == []


def test_a_refused_title_is_given_back_with_its_typed_error(board: Board, built: Path) -> None:
    a = open_example(board, board.alice)
    # A title with a control character passes maxLength but not the schema's pattern: refused before sending
    a.fill("[data-testid=new-task-title]", "bad\u0001title")
    a.click("[data-testid=new-task-submit]")
    error = a.locator("[data-testid=new-task-error]")
    error.wait_for(timeout=WAIT_MS)
    assert error.inner_text().startswith("validation_error:")
    assert a.input_value("[data-testid=new-task-title]") == "bad\u0001title"
    assert a.evaluate("window.collab.client.pendingOps") == 0
