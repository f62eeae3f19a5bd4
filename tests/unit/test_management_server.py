"""``collab_dev.emulator.management_server`` on a scripted transport: answers that must wait keep their order, and a
connection handed to the other protocol gets every byte after the answers before it."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from collab_dev.emulator.management_server import LeanHttpProtocol, Reply, eagerly

AUTH = b"Authorization: AWS4-HMAC-SHA256 x\r\n"


def req(method: str, path: str, body: bytes = b"") -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: h\r\n".encode()
        + AUTH
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False
        self.reading = True
        self.protocol: Any = None

    def write(self, data: Any) -> None:
        self.written += bytes(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_protocol(self) -> Any:
        return self.protocol


class Recorder(asyncio.Protocol):
    """The protocol a connection is handed to: what it was given, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def connection_made(self, transport: Any) -> None:
        self.calls.append(("connection_made", transport))

    def data_received(self, data: bytes) -> None:
        self.calls.append(("data_received", data))


def run(coro: Any) -> None:
    """asyncio.run in a thread of its own: the browser tests' sync Playwright may hold this
    thread's event loop when the suites share a worker."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coro)
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(30)
    if errors:
        raise errors[0]


async def until(predicate: Any) -> None:
    for _ in range(100):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not met")


def test_eagerly_runs_a_coroutine_that_does_not_suspend_without_a_task() -> None:
    ran: list[str] = []

    async def quick() -> int:
        ran.append("ran")
        return 7

    async def main() -> None:
        assert eagerly(quick()) == 7
        assert ran == ["ran"]

    run(main())


def test_eagerly_finishes_a_suspended_coroutine_in_a_task() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        gate = loop.create_future()
        seen: list[str] = []

        async def slow() -> str:
            seen.append("before")
            value = await gate
            seen.append("after")
            return f"got {value}"

        task = eagerly(slow())
        assert isinstance(task, asyncio.Task) and seen == ["before"]
        gate.set_result(3)
        assert await task == "got 3" and seen == ["before", "after"]

        # Cancelling the task cancels the coroutine where it waits.
        stopped: list[str] = []

        async def waits() -> None:
            try:
                await loop.create_future()
            except asyncio.CancelledError:
                stopped.append("cancelled")
                raise

        task2 = eagerly(waits())
        assert isinstance(task2, asyncio.Task)
        await asyncio.sleep(0)
        task2.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task2
        assert stopped == ["cancelled"]

    run(main())


def test_answers_keep_their_order_when_one_must_wait() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        gate: asyncio.Future[None] = loop.create_future()

        async def serve(method: str, cid: str, authorization: str, body: bytes | None) -> Reply:
            if cid == "slow":
                await gate
            return 200, (("X-Id", cid),), body or b""

        live: set[LeanHttpProtocol] = set()
        proto = LeanHttpProtocol("/@connections/", serve, Recorder, live, max_body=1024)
        transport = Transport()
        proto.connection_made(transport)
        assert live == {proto}
        proto.data_received(
            req("POST", "/@connections/fast1", b"a") + req("POST", "/@connections/slow", b"b")
        )
        proto.data_received(req("POST", "/@connections/fast2", b"c"))
        # The first answer is out; the second waits, and the third waits behind it.
        assert transport.written.count(b"HTTP/1.1 200 OK") == 1 and b"X-Id: fast1" in transport.written
        gate.set_result(None)
        await until(lambda: not proto._queue)
        ids = [line for line in transport.written.split(b"\r\n") if line.startswith(b"X-Id")]
        assert ids == [b"X-Id: fast1", b"X-Id: slow", b"X-Id: fast2"]
        assert transport.written.endswith(b"\r\n\r\nc")
        assert transport.reading and not transport.closed

    run(main())


def test_hand_over_waits_for_the_answers_before_it() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        gate: asyncio.Future[None] = loop.create_future()

        async def serve(method: str, cid: str, authorization: str, body: bytes | None) -> Reply:
            await gate
            return 204, (), b""

        recorder = Recorder()
        live: set[LeanHttpProtocol] = set()
        proto = LeanHttpProtocol("/@connections/", serve, lambda: recorder, live, max_body=1024)
        transport = Transport()
        proto.connection_made(transport)
        other = b"GET /api/x HTTP/1.1\r\nHost: h\r\n\r\n"
        proto.data_received(req("DELETE", "/@connections/c1") + other[:10])
        assert recorder.calls == [] and not transport.reading  # paused until the answer is out
        proto.data_received(other[10:])
        gate.set_result(None)
        await until(lambda: recorder.calls)
        assert transport.written.startswith(b"HTTP/1.1 204 No Content\r\n")
        assert recorder.calls == [("connection_made", transport), ("data_received", other)]
        assert transport.protocol is recorder and transport.reading and live == set()

    run(main())


@pytest.mark.parametrize(
    "first",
    [
        b"GET /ws?token=x HTTP/1.1\r\n",
        b"PUT /@connections/c HTTP/1.1\r\n",
        b"GET /@connections/a/b HTTP/1.1\r\nHost: h\r\n\r\n",
        b"POST /@connections/c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST /@connections/c HTTP/1.1\r\nContent-Length: 2000\r\n\r\n",
        b"POST /@connections/c HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
    ],
)
def test_what_is_not_a_plain_management_request_is_handed_over_at_once(first: bytes) -> None:
    async def main() -> None:
        async def serve(method: str, cid: str, authorization: str, body: bytes | None) -> Reply:
            raise AssertionError("not ours")

        recorder = Recorder()
        proto = LeanHttpProtocol("/@connections/", serve, lambda: recorder, set(), max_body=1024)
        transport = Transport()
        proto.connection_made(transport)
        proto.data_received(first)
        assert transport.protocol is recorder
        assert recorder.calls == [("connection_made", transport), ("data_received", first)]
        assert transport.written == b""

    run(main())


def test_a_partial_request_line_waits_for_more() -> None:
    async def main() -> None:
        async def serve(method: str, cid: str, authorization: str, body: bytes | None) -> Reply:
            return 200, (), b""

        recorder = Recorder()
        proto = LeanHttpProtocol("/@connections/", serve, lambda: recorder, set(), max_body=1024)
        transport = Transport()
        proto.connection_made(transport)
        whole = req("POST", "/@connections/abc%3D", b"x")
        for i in range(len(whole)):
            proto.data_received(whole[i : i + 1])
        assert recorder.calls == [] and transport.written.startswith(b"HTTP/1.1 200 OK\r\n")

    run(main())
