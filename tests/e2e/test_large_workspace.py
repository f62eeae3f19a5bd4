"""A workspace of 130 live members through the local gateway with the real functions (issue 15):
an edit reaches every peer once, the 29 past the first 100 through one asynchronous invocation of
the fan-out function, made with Lambda's Invoke API as the message function's role and posting as
the fan-out function's own (the gateway enforces both, collab_dev/permissions.py)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import TEST_JWT_SECRET
from tests.e2e.conftest import real_functions_env
from tests.e2e.harness import RunningGateway

pytestmark = pytest.mark.e2e

MEMBERS = 130
WAIT_S = 60.0  # a bound on the wait on a busy machine, not a claim about speed


@pytest.fixture(scope="module")
def gw(service_urls: dict[str, str]) -> Iterator[RunningGateway]:
    with pytest.MonkeyPatch.context() as mp:
        real_functions_env(mp, service_urls, TEST_JWT_SECRET)
        mp.setenv("LIMIT_MEMBERS_PER_WORKSPACE", "200")
        gateway = RunningGateway(sweep_interval_s=None).start()
        yield gateway
        gateway.stop()


async def _edit_reaches_everyone(
    gw: RunningGateway, settings: Any, wid: str, uids: list[str], tid: str
) -> dict[str, Any]:
    import websockets

    from collab.auth.tokens import issue_ticket

    gate = asyncio.Semaphore(16)
    sockets: dict[str, Any] = {}

    async def join(uid: str) -> None:
        async with gate:
            ws = await websockets.connect(
                f"{gw.ws_url}?token={issue_ticket(settings, uid, wid)[0]}", max_size=None
            )
            await ws.send(json.dumps({"action": "sync", "since": None}))
            while json.loads(await ws.recv())["type"] != "sync":
                pass
            sockets[uid] = ws

    await asyncio.wait_for(asyncio.gather(*(join(u) for u in uids)), WAIT_S)
    editor = sockets[uids[0]]
    rid = str(uuid.uuid4())
    await editor.send(
        json.dumps(
            {"action": "task.update", "request_id": rid, "task_id": tid, "changes": {"title": "to everyone"}}
        )
    )

    async def ack() -> int:
        while True:
            frame = json.loads(await editor.recv())
            if frame["type"] == "ack" and frame["data"]["request_id"] == rid:
                return int(frame["data"]["seq"])

    seq = await asyncio.wait_for(ack(), WAIT_S)

    async def received(ws: Any) -> int:
        got = 0
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == "task.updated" and frame.get("seq") == seq:
                got += 1
                try:  # and no second copy of it
                    while True:
                        again = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
                        got += again["type"] == "task.updated" and again.get("seq") == seq
                except TimeoutError:
                    return got

    counts = await asyncio.wait_for(asyncio.gather(*(received(sockets[u]) for u in uids[1:])), WAIT_S)
    for ws in sockets.values():
        await ws.close()
    return {"counts": counts, "seq": seq}


def test_an_edit_in_a_workspace_of_130_reaches_every_peer_once(
    gw: RunningGateway, settings: Any, clean: None
) -> None:
    from tests.support.workspaces import make_workspaces

    [team] = make_workspaces(
        settings.dsn, settings, workspaces=1, members=MEMBERS, tasks=1, tag=f"big{uuid.uuid4().hex[:6]}"
    )
    uids = [m.user_id for m in team.members]
    # in a thread of its own: a browser test of the same worker may have left its loop running here
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        coro = _edit_reaches_everyone(gw, settings, team.workspace_id, uids, next(iter(team.tasks)))
        out = pool.submit(asyncio.run, coro).result()
    assert out["counts"] == [1] * (MEMBERS - 1)
    # 129 peers: 100 posted by the message function, 29 by a fan-out invocation (presence batches
    # to the 130 made others), and the event's trace holds every outcome, the chunk's merged in
    assert gw.gateway.invocations.get("fanout", 0) >= 1
    assert gw.gateway.denied == []
    import redis

    from collab.adapters.redis import trace

    r = redis.Redis.from_url(settings.redis_url)

    def outcomes() -> list[str]:
        [record], _ = trace.traces(r, team.workspace_id, out["seq"])
        return sorted(o for _, _, o in record["connections"])

    deadline = time.monotonic() + WAIT_S  # the chunk records its outcomes just after its posts
    while "dispatched" in outcomes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert outcomes() == ["delivered"] * (MEMBERS - 1) + ["sender"]
