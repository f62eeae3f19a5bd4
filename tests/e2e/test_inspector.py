"""The inspector page in real Chromium, against collab dev's pieces: the local gateway with the real
functions, the webhook queue in moto's SQS (server mode) read by the poller, a webhook receiver on
loopback, and a member's board open in another page. The page shows the live connections, presence,
recent events with their delivery outcomes, webhook attempts and usage, and refreshes by itself.
With ``UPDATE_SCREENSHOTS=1`` its screenshot replaces docs/inspector.png (otherwise it goes to the
test's temporary folder, so a test run leaves the checkout as it was)."""

from __future__ import annotations

import json
import os
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from collab.auth.tokens import issue_access_token
from tests.conftest import TEST_JWT_SECRET
from tests.e2e.conftest import real_functions_env
from tests.e2e.harness import RunningGateway
from tests.support.webhook_receiver import Receiver

pytestmark = pytest.mark.e2e

WAIT_MS = 20_000
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "inspector.png"


@pytest.fixture(scope="module")
def dev(service_urls: dict[str, str]) -> Iterator[RunningGateway]:
    """What ``collab dev`` runs: the gateway, moto's SQS with the webhook queue, and its poller."""
    from collab.adapters.sqs.queue import WebhookQueue
    from collab.domain import usage
    from collab_dev.emulator.lambda_events import LambdaContext
    from collab_dev.emulator.lambda_loader import LambdaFunction
    from collab_dev.webhook_poller import Poller, start_local_queue

    with pytest.MonkeyPatch.context() as mp:
        real_functions_env(mp, service_urls, TEST_JWT_SECRET)
        mp.setenv("AWS_ACCESS_KEY_ID", "local")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "local")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setattr(usage, "FLUSH_S", 0.0)  # show usage at once
        server, queue_url = start_local_queue()
        host, port = server.get_host_and_port()
        mp.setenv("WEBHOOK_QUEUE_URL", queue_url)
        mp.setenv("SQS_ENDPOINT_URL", f"http://{host}:{port}")
        mp.setenv("WEBHOOK_ALLOW_LOOPBACK", "1")
        gateway = RunningGateway(sweep_interval_s=None).start()
        function = LambdaFunction("webhooks")
        poller = Poller(
            WebhookQueue(queue_url, endpoint_url=f"http://{host}:{port}"),
            lambda event: function(event, LambdaContext(function.function_name)),
        )
        poller.start()
        try:
            yield gateway
        finally:
            poller.stop()
            poller.join(5)
            gateway.stop()
            server.stop()


def call(base: str, token: str, method: str, path: str, body: Any = None) -> Any:
    req = urllib.request.Request(
        f"{base}/api{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def test_the_inspector_shows_a_workspace_live(
    dev: RunningGateway, settings: Any, clean: None, browser: Any, tmp_path: Path
) -> None:
    # Given a workspace with a webhook to a loopback receiver, and Bob's board open
    run = uuid.uuid4().hex[:6]
    alice, bob = f"alice-{run}", f"bob-{run}"
    tokens = {
        u: issue_access_token(settings, u, email=f"{u}@example.test", name=n)
        for u, n in ((alice, "Alice Martin"), (bob, "Bob Chen"))
    }
    base = dev.http_url
    for u in (alice, bob):
        call(base, tokens[u], "GET", "/workspaces")
    wid = call(base, tokens[alice], "POST", "/workspaces", {"name": "Inspected board"})["id"]
    call(base, tokens[alice], "POST", f"/workspaces/{wid}/members", {"user_id": bob, "role": "member"})
    receiver = Receiver()
    contexts = []
    try:
        hook = call(base, tokens[alice], "POST", f"/workspaces/{wid}/webhooks", {"url": receiver.url})
        board = browser.new_context(viewport={"width": 1100, "height": 700})
        contexts.append(board)
        bob_page = board.new_page()
        bob_page.goto(f"{base}/?{urlencode({'token': tokens[bob], 'workspace': wid})}")
        bob_page.wait_for_selector("[data-testid=conn-state][data-state=live]", timeout=WAIT_MS)
        for title in ("Plan the launch", "Write the notes"):
            call(base, tokens[alice], "POST", f"/workspaces/{wid}/tasks", {"title": title})

        # When Alice opens the inspector
        inspector = browser.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(inspector)
        page = inspector.new_page()
        page.goto(f"{base}/inspector.html?{urlencode({'token': tokens[alice], 'workspace': wid})}")
        page.wait_for_selector("[data-testid=refresh-state][data-state=live]", timeout=WAIT_MS)

        # Then it shows Bob's live connection, his presence, the events delivered to him, the
        # webhook's successful attempts and the usage
        page.wait_for_selector(f"[data-testid=conn-row][data-user='{bob}']", timeout=WAIT_MS)
        page.wait_for_function(
            "document.querySelectorAll('[data-testid=event-row]').length >= 2", timeout=WAIT_MS
        )
        events = page.inner_text("[data-testid=events]")
        assert f"{bob}: delivered" in events and "task.created" in events
        assert "Bob Chen" in page.inner_text("[data-testid=presence]")
        page.wait_for_function(
            "(document.querySelector('[data-testid=hook-row]')?.innerText || '').includes('#2 204')",
            timeout=WAIT_MS,
        )
        assert receiver.received and all(h["webhook-id"] for h, _ in receiver.received)
        assert int(page.inner_text("[data-testid=usage-posts-out]")) >= 2
        assert page.get_attribute("[data-testid=hook-row]", "data-status") == "active"
        assert hook["url"] in page.inner_text("[data-testid=webhooks]")

        # When more happens, the page refreshes by itself
        call(base, tokens[alice], "POST", f"/workspaces/{wid}/tasks", {"title": "Ship it"})
        page.wait_for_selector("[data-testid=event-row][data-seq='4']", timeout=WAIT_MS)
        shot = SCREENSHOT if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path / SCREENSHOT.name
        page.screenshot(path=str(shot), full_page=True)
    finally:
        for context in contexts:
            context.close()
        receiver.close()
