"""The local gateway's worker processes (``collab_dev.emulator.worker_pool``): each worker is a Lambda
container of the functions it has run, and nothing the gateway enforces is lost across processes.

Part one runs small functions of a scratch project (``tmp_path/functions/<name>/handler.py``) in a
``WorkerPool``; part two runs the project's real functions behind a gateway with two workers and
real WebSocket clients.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collab_dev import permissions
from collab_dev.emulator.worker_pool import WorkerDied, WorkerPool
from tests.e2e.conftest import real_functions_env
from tests.e2e.harness import RunningGateway


def _run(coro: Any) -> Any:
    """``asyncio.run`` in a thread of its own: the suite's Playwright (sync API) keeps a loop running
    in the main thread, where ``asyncio.run`` refuses to start."""
    out: dict[str, Any] = {}

    def main() -> None:
        try:
            out["value"] = asyncio.run(coro)
        except BaseException as exc:
            out["error"] = exc

    thread = threading.Thread(target=main)
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


HANDLERS = {
    # module-level state lives as long as the worker: INITS counts its cold starts
    "echo": """
import os, time
INITS = []
INITS.append(os.getpid())
CALLS = 0

def handler(event, context):
    global CALLS
    if event.get("exit"):
        os._exit(3)
    CALLS += 1
    started = time.monotonic()
    time.sleep(event.get("sleep", 0))
    return {"pid": os.getpid(), "inits": len(INITS), "calls": CALLS, "function": context.function_name,
            "started": started, "ended": time.monotonic(), "echo": event.get("echo")}
""",
    "fails": """
def handler(event, context):
    raise ValueError("refused: " + event["why"])
""",
    "heartbeat": """
import os, time

def handler(event, context):
    from collab_dev import permissions
    return {"function": permissions.current_function(), "pid": os.getpid(), "ended": time.monotonic()}
""",
}


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    (tmp_path / "functions").mkdir()
    (tmp_path / "functions" / "__init__.py").write_text("")
    for name, source in HANDLERS.items():
        folder = tmp_path / "functions" / name
        folder.mkdir()
        (folder / "__init__.py").write_text("")
        (folder / "handler.py").write_text(source)
    return tmp_path


def _with_pool(root: Path, processes: int, body: Any, **kwargs: Any) -> Any:
    async def run() -> Any:
        pool = WorkerPool(processes, root, **kwargs)
        pool.start()
        try:
            return await body(pool)
        finally:
            await pool.shutdown()

    return _run(run())


def test_a_container_is_cold_once_then_warm(scratch: Path) -> None:
    async def body(pool: WorkerPool) -> list[Any]:
        return [await pool.invoke("echo", {"echo": n}) for n in range(3)]

    first, second, third = _with_pool(scratch, 1, body)
    assert first["pid"] != os.getpid()  # not in the caller's process
    assert first["pid"] == second["pid"] == third["pid"]
    assert (first["inits"], second["inits"], third["inits"]) == (1, 1, 1)  # imported once: one cold start
    assert (first["calls"], second["calls"], third["calls"]) == (1, 2, 3)
    assert first["function"] == "collab-echo" and third["echo"] == 2


def test_workers_run_invocations_side_by_side_and_a_cap_holds_a_function_to_it(scratch: Path) -> None:
    def overlaps(results: list[dict[str, Any]]) -> int:
        spans = sorted((r["started"], r["ended"]) for r in results)
        return sum(1 for a, b in itertools.pairwise(spans) if b[0] < a[1])

    async def body(pool: WorkerPool) -> list[Any]:
        return list(await asyncio.gather(*(pool.invoke("echo", {"sleep": 0.3}) for _ in range(4))))

    free = _with_pool(scratch, 2, body)
    capped = _with_pool(scratch, 2, body, concurrency={"echo": 1})
    assert len({r["pid"] for r in free}) == 2
    assert overlaps(free) >= 1  # two containers at once
    assert overlaps(capped) == 0  # reserved concurrency 1: one at a time


def test_an_error_reaches_the_caller_and_a_dead_container_is_replaced(scratch: Path) -> None:
    async def body(pool: WorkerPool) -> tuple[Any, ...]:
        before = await pool.invoke("echo", {})
        with pytest.raises(ValueError, match="refused: because"):
            await pool.invoke("fails", {"why": "because"})
        with pytest.raises(WorkerDied):
            await pool.invoke("echo", {"exit": True})
        after = await pool.invoke("echo", {})
        return before, after

    before, after = _with_pool(scratch, 1, body)
    assert before["pid"] != after["pid"]  # a fresh container...
    assert after["inits"] == 1 and after["calls"] == 1  # ...with its own cold start


def test_each_function_has_containers_of_its_own(scratch: Path) -> None:
    async def body(pool: WorkerPool) -> tuple[Any, Any, dict[str, int]]:
        slow = asyncio.ensure_future(pool.invoke("echo", {"sleep": 1.0}))
        await asyncio.sleep(0.2)  # echo's only container is busy now
        beat = await pool.invoke("heartbeat", {})
        return await slow, beat, pool.containers()

    slow, beat, containers = _with_pool(scratch, 1, body)
    assert beat["pid"] != slow["pid"]
    assert beat["ended"] < slow["ended"]  # it did not wait for the other function's container
    assert containers == {"echo": 1, "heartbeat": 1}


def test_each_invocation_signs_as_its_own_function(scratch: Path) -> None:
    async def body(pool: WorkerPool) -> Any:
        return await pool.invoke("heartbeat", {})

    # a function of the permissions table signs its Management API calls with its own key
    assert _with_pool(scratch, 1, body)["function"] == "heartbeat"


def test_a_pool_refuses_nonsense_settings(scratch: Path) -> None:
    with pytest.raises(ValueError, match="at least one process"):
        WorkerPool(0, scratch)
    with pytest.raises(ValueError, match="at least 1"):
        WorkerPool(2, scratch, concurrency={"message": 0})


# -- the project's functions behind a gateway with worker processes ------------------------------
@pytest.fixture(scope="module")
def gw(service_urls: dict[str, str]) -> Iterator[RunningGateway]:
    from tests.conftest import TEST_JWT_SECRET

    with pytest.MonkeyPatch.context() as mp:
        real_functions_env(mp, service_urls, TEST_JWT_SECRET)
        gateway = RunningGateway(sweep_interval_s=None, processes=2).start()
        try:
            yield gateway
        finally:
            gateway.stop()


def test_real_functions_in_workers_deliver_edits_and_sign_as_their_own_roles(
    gw: RunningGateway, service_urls: dict[str, str], settings: Any
) -> None:
    from tests.support.board_client import BoardClient
    from tests.support.workspaces import make_workspaces

    signers: Counter[str | None] = Counter()
    manage = gw.gateway._manage

    async def recording(method: str, cid: str, authorization: str, body: bytes | None) -> Any:
        signers[permissions.function_of(authorization)] += 1
        return await manage(method, cid, authorization, body)

    gw.gateway._manage = recording  # type: ignore[method-assign]  # read per new connection
    (team,) = make_workspaces(
        service_urls["DATABASE_URL"],
        settings,
        workspaces=1,
        members=2,
        tasks=1,
        tag=f"workers-{random.randrange(1 << 30):x}",
    )

    async def scenario() -> tuple[dict[str, Any], list[str]]:
        import aiohttp

        got: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        async with aiohttp.ClientSession() as http:
            a, b = (
                BoardClient(
                    http,
                    f"{gw.http_url}/api",
                    user_id=m.user_id,
                    token=m.token,
                    workspace_id=team.workspace_id,
                    tasks=team.tasks,
                    last_seq=team.last_seq,
                )
                for m in team.members
            )

            def on_event(client: BoardClient, frame: dict[str, Any], received: int) -> None:
                if frame["type"] == "task.updated" and not got.done():
                    got.set_result(frame)

            b.on_event = on_event
            for c in (a, b):
                c.start()
                await asyncio.wait_for(c.live.wait(), 30)
            (task_id,) = team.tasks
            ack = await asyncio.wait_for(a.update_task(task_id, {"title": "from a worker"}), 30)
            frame = await asyncio.wait_for(got, 30)
            await a.stop()  # $disconnect announces a's leave to b: posted by "disconnect"
            for _ in range(100):
                if signers["disconnect"]:
                    break
                await asyncio.sleep(0.1)
            await b.stop()
            return {"ack": ack, "frame": frame}, gw.gateway.denied

    seen, denied = _run(scenario())
    assert seen["ack"]["ok"] is True
    assert seen["frame"]["data"]["task"]["title"] == "from a worker"
    assert signers["message"] >= 1  # the fan-out of the edit, signed as the message function
    assert signers["disconnect"] >= 1
    assert denied == []
    pool = gw.gateway.processes
    assert pool is not None and pool.pids() and os.getpid() not in pool.pids()


def test_size_rules_hold_with_functions_in_workers(
    gw: RunningGateway, service_urls: dict[str, str], settings: Any
) -> None:
    from collab_dev.emulator.frame_limits import MAX_FRAME_BYTES
    from tests.support.workspaces import make_workspaces

    (team,) = make_workspaces(
        service_urls["DATABASE_URL"],
        settings,
        workspaces=1,
        members=1,
        tasks=0,
        tag=f"workers-size-{random.randrange(1 << 30):x}",
    )

    async def scenario() -> int | None:
        import aiohttp
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        headers = {"Authorization": f"Bearer {team.members[0].token}"}
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{gw.http_url}/api/ws-tickets", json={"workspace_id": team.workspace_id}, headers=headers
            ) as resp,
        ):
            assert resp.status == 200, await resp.text()
            url = (await resp.json())["url"]
        async with connect(url, compression=None, max_size=2**20) as ws:  # $connect ran in a worker
            await ws.send("b" * (MAX_FRAME_BYTES + 1))
            try:
                await asyncio.wait_for(ws.recv(), 10)
            except ConnectionClosed as exc:
                return exc.rcvd.code if exc.rcvd else None
        return None

    assert _run(scenario()) == 1009
