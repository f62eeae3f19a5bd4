"""Contract v1.3 through the local gateway (what `collab dev` serves) with real WebSocket clients:
three users on one board, each a ``tests.support.board_client.BoardClient`` (the Python twin of the
browser client) over the real handlers, Postgres and Redis.

Given ann, bob and carol live on one task, when bob and ann change its status from the same version,
then ann's ack lists bob's change as overwritten and bob gets ``task.overwritten``; when carol
renames the task after ann did, ann's undo of her rename is refused with carol's title, while her
undo of the status change goes through; when ann and bob type in the description at once, both
texts are kept and every board converges on it; when bob edits, ann and carol see it, and see it go.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.conftest import TEST_JWT_SECRET
from tests.e2e.conftest import real_functions_env
from tests.e2e.harness import RunningGateway

pytestmark = pytest.mark.e2e

WAIT_S = 20.0  # a bound on waiting for a frame, reached only if it never comes (a busy 2-core machine)


@pytest.fixture(scope="module")
def gw(service_urls: dict[str, str]) -> Iterator[RunningGateway]:
    with pytest.MonkeyPatch.context() as mp:
        real_functions_env(mp, service_urls, TEST_JWT_SECRET)
        gateway = RunningGateway(sweep_interval_s=None).start()
        yield gateway
        gateway.stop()


async def until(check: Callable[[], Any], what: str) -> Any:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not (value := check()):
        assert asyncio.get_running_loop().time() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.02)
    return value


async def scenario(gw: RunningGateway, settings: Any) -> None:
    import aiohttp

    from tests.support.board_client import BoardClient
    from tests.support.workspaces import make_workspaces

    (ws,) = make_workspaces(
        settings.dsn, settings, workspaces=1, members=3, tasks=1, tag=f"collab-{uuid.uuid4().hex[:8]}"
    )
    async with aiohttp.ClientSession() as http:
        clients = [
            BoardClient(
                http,
                f"{gw.http_url}/api",
                user_id=m.user_id,
                token=m.token,
                workspace_id=ws.workspace_id,
                tasks=ws.tasks,
                last_seq=ws.last_seq,
                heartbeat_s=3600,
            )
            for m in ws.members
        ]
        for c in clients:
            c.start()
        try:
            await asyncio.wait_for(asyncio.gather(*(c.live.wait() for c in clients)), WAIT_S)
            await live_scenario(ws, *clients)
        finally:
            for c in clients:
                await c.stop()


async def live_scenario(ws: Any, ann: Any, bob: Any, carol: Any) -> None:
    (tid,) = ws.tasks
    seen = ws.tasks[tid]["version"]

    # a concurrent edit: the receipt, and the notice to the one overwritten
    bobs = await bob.update_task(tid, {"status": "in_progress"}, seen_version=seen)
    anns = await ann.update_task(tid, {"status": "done", "priority": "high"}, seen_version=seen)
    assert bobs["ok"] and bobs["overwrote"] == []
    (item,) = anns["overwrote"]
    assert (item["field"], item["value"], item["by"]["id"]) == ("status", "in_progress", bob.user_id)
    (note,) = await until(lambda: bob.overwritten, "task.overwritten reaches bob")
    assert note["user_id"] == ann.user_id and note["data"]["fields"][0]["value"] == "in_progress"
    assert ann.overwritten == [] and carol.overwritten == []

    # undo: refused when the field moved on, allowed when it did not
    renamed = await ann.update_task(tid, {"title": "Ann's title"})
    await carol.update_task(tid, {"title": "Carol's title"})
    refused = await ann.undo(renamed["seq"])
    assert refused["ok"] is False and refused["error"]["code"] == "conflict"
    assert refused["error"]["task"]["title"] == "Carol's title"
    undone = await ann.undo(anns["seq"])
    assert undone["ok"] and (undone["task"]["status"], undone["task"]["priority"]) == (
        "in_progress",
        "medium",
    )
    await until(lambda: carol.tasks[tid]["version"] == undone["task"]["version"], "carol sees the undo")
    assert carol.tasks[tid]["status"] == "in_progress"

    # two people typing in one description at once: both texts kept, every board converges
    start = await ann.update_task(tid, {"description": "Goals.\n\nRisks.\n\nDates."})
    v = start["task"]["version"]
    both = await asyncio.gather(
        ann.update_task(tid, {"description": "Goals: ship v1.3.\n\nRisks.\n\nDates."}, seen_version=v),
        bob.update_task(tid, {"description": "Goals.\n\nRisks.\n\nDates: March."}, seen_version=v),
    )
    last = max(both, key=lambda a: a["task"]["version"])
    merged = "Goals: ship v1.3.\n\nRisks.\n\nDates: March."
    assert last["task"]["description"] == merged and last["merged"] == ["description"]
    for c in (ann, bob, carol):
        await until(lambda c=c: c.tasks[tid]["description"] == merged, f"{c.user_id} converges")

    # editing indicators: seen by peers, gone on blur
    await bob.set_editing(tid, "description")
    for c in (ann, carol):
        shown = await until(lambda c=c: c.editing.get(bob.user_id), "the indicator reaches a peer")
        assert (shown["task_id"], shown["field"]) == (tid, "description")
    await bob.set_editing(None)
    for c in (ann, carol):
        await until(lambda c=c: bob.user_id not in c.editing, "the indicator goes")


def test_three_users_on_one_board_receipts_undo_merges_and_editing(gw: RunningGateway, settings: Any) -> None:
    # on a thread of its own: the test's thread may already run a loop (Playwright's, in this worker)
    with ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: asyncio.run(scenario(gw, settings))).result(timeout=180)
