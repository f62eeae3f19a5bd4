"""The Management API's own HTTP/1.1 server, on the port aiohttp serves.

Why: a fan-out to a 50-member workspace is 49 ``POST /@connections/{id}`` on one event loop, and
aiohttp's server spends ~100 us of CPU on each (request parsing, ``Request`` objects, routing,
response preparation), several times the cost of the WebSocket frame the POST turns into
(``python -m bench.emulator_posts``). The handlers' requests are always the same shape (a request line,
a few headers, a Content-Length body, keep-alive), so a connection whose requests have that shape
is served here, and every other one by aiohttp.

Every new TCP connection starts with a :class:`LeanHttpProtocol`. It reads requests of the form
``POST|GET|DELETE {prefix}{one path segment} HTTP/1.x`` with a Content-Length body of at most
``max_body`` bytes and no ``Transfer-Encoding``, ``Expect`` or ``Upgrade``, and answers each through
``serve`` in the order they came (pipelined requests included). At the first request that is not of
that shape (``GET /ws``, ``/api/...``, the page, a larger body, ...), once every answer before it
is written, the connection is handed to aiohttp for the rest of its life: aiohttp's protocol
becomes the transport's protocol and is given the bytes read so far, as if it had had the
connection from the start.

``serve`` is a coroutine function; it is stepped at once (:func:`eagerly`) and is answered without
a task or an event-loop turn when it does not suspend, which is the common case (a WebSocket send
that fits the transport's buffer).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine, Generator, Sequence
from typing import Any, TypeVar
from urllib.parse import unquote

T = TypeVar("T")

Reply = tuple[int, Sequence[tuple[str, str]], bytes]  # status, headers, body
# (method, connection id, Authorization header or "", body or None when it was too big to keep)
Serve = Callable[[str, str, str, bytes | None], Coroutine[Any, Any, Reply]]

MAX_HEAD = 16 * 1024  # request line and headers; a longer head is aiohttp's to refuse
MAX_QUEUED = 64  # answers waiting to be written before reading more requests pauses
KEEPALIVE_S = 3630.0  # idle keep-alive connections close after this, as aiohttp's server does

_METHODS = (b"POST", b"GET", b"DELETE")
_VERSIONS = (b"HTTP/1.1", b"HTTP/1.0")
_REASONS = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    410: "Gone",
    413: "Request Entity Too Large",
    500: "Internal Server Error",
}
_INTERNAL: Reply = (500, (("Content-Type", "application/json"),), b'{"message": "Internal Server Error"}')
_HAND_OVER = object()  # what _parse returns for a request that is aiohttp's
_CLOSE = b"Connection: close\r\n"  # the answer's Connection header when the request said close
_KEEP_ALIVE = b"Connection: keep-alive\r\n"  # ... when an HTTP/1.0 request asked for keep-alive

access_log = logging.getLogger("aiohttp.access")  # the logger aiohttp's access log writes to
log = logging.getLogger("collab_dev.emulator")


class _Resumed:
    """A coroutine already stepped once (``first`` is what it yielded), awaitable by a task."""

    __slots__ = ("_coro", "_first")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self._coro, self._first = coro, first

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, value = self._coro, self._first
        while True:
            try:
                sent = yield value  # the future it waits on goes to the task running us
            except BaseException as exc:  # noqa: BLE001 - cancellation and the like go into it
                try:
                    value = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


async def _finish(resumed: _Resumed) -> Any:
    return await resumed


def eagerly(coro: Coroutine[Any, Any, T]) -> T | asyncio.Task[T]:
    """Run ``coro`` now, up to its first suspension: its result if it finished without one, else a
    task finishing it. (Python 3.12's eager tasks, without a task for the common case.)"""
    try:
        first = coro.send(None)
    except StopIteration as stop:
        result: T = stop.value
        return result
    return asyncio.ensure_future(_finish(_Resumed(coro, first)))


def _response(status: int, headers: Sequence[tuple[str, str]], body: bytes, connection: bytes) -> bytes:
    """``connection``: the Connection header line to send (b"" for none)."""
    head = f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n"
    if status != 204:
        head += f"Content-Length: {len(body)}\r\n"
    for name, value in headers:
        head += f"{name}: {value}\r\n"
    return head.encode("latin-1") + connection + b"\r\n" + body


class _Pending:
    """An answer still running: written when it and every answer before it are done."""

    __slots__ = ("cid", "connection", "method", "started", "task")

    def __init__(
        self, task: asyncio.Task[Reply], connection: bytes, method: str, cid: str, started: float
    ) -> None:
        self.task, self.connection, self.started = task, connection, started
        self.method, self.cid = method, cid


class LeanHttpProtocol(asyncio.Protocol):
    """One TCP connection: requests to ``prefix`` answered by ``serve``; anything else, from the
    first such request on, handed to the protocol ``fallback()`` makes (aiohttp's).

    ``live`` holds the connections this protocol still serves (the owner closes them on stop)."""

    def __init__(
        self,
        prefix: str,
        serve: Serve,
        fallback: Callable[[], asyncio.Protocol],
        live: set[LeanHttpProtocol],
        *,
        max_body: int,
        keepalive_s: float = KEEPALIVE_S,
    ) -> None:
        self._prefix = prefix.encode()
        self._starts = tuple(m + b" " + self._prefix for m in _METHODS)
        self._serve = serve
        self._fallback = fallback
        self._live = live
        self._max_body = max_body
        self._keepalive_s = keepalive_s
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._queue: deque[bytes | _Pending] = deque()
        self._hand_over = False  # the next request is aiohttp's: hand over once the queue is written
        self._closing = False  # a request asked to close, or the client sent EOF
        self._eof = False
        self._write_paused = False
        self._read_paused = False
        self._last = 0.0
        self._timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._live.add(self)
        self._last = self._loop.time()
        self._timer = self._loop.call_at(self._last + self._keepalive_s, self._idle)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        self._last = self._loop.time()
        if not (self._hand_over or self._closing):
            self._read_requests()

    def eof_received(self) -> bool:
        self._eof = True
        # Answer what was asked first (_settle closes or hands over); else close: a request cut
        # short, or none.
        return bool(self._queue or self._hand_over)

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()

    def pause_writing(self) -> None:
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._update_reading()

    def close(self) -> None:
        """Close the connection (the owner is stopping)."""
        if self._transport is not None:
            self._transport.close()
        self._forget()

    # -- requests --------------------------------------------------------------------------------
    def _read_requests(self) -> None:
        buf, pos, out = self._buf, 0, []
        while True:
            parsed = self._parse(buf, pos)
            if parsed is None:
                break
            if parsed is _HAND_OVER:
                self._hand_over = True
                break
            pos, method, cid, authorization, body, connection = parsed
            answer = self._answer(method, cid, authorization, body, connection)
            if self._queue or not isinstance(answer, bytes):
                self._queue.append(answer)
            else:
                out.append(answer)
            if connection == _CLOSE:
                self._closing = True
                break
        if pos:
            del buf[:pos]
        if out:
            assert self._transport is not None
            self._transport.write(b"".join(out))
        if not self._queue:
            self._settle()
        else:
            self._update_reading()

    def _parse(self, buf: bytearray, pos: int) -> Any:
        """None (more bytes needed), ``_HAND_OVER``, or (end, method, connection id,
        Authorization, body, Connection header to answer with)."""
        end = buf.find(b"\r\n\r\n", pos)
        if end < 0:
            head = bytes(buf[pos : pos + 32])
            ours = any(s.startswith(head) or head.startswith(s) for s in self._starts)
            if not ours or len(buf) - pos >= MAX_HEAD:
                return _HAND_OVER
            return None
        line_end = buf.find(b"\r\n", pos)
        parts = bytes(buf[pos:line_end]).split(b" ")
        if len(parts) != 3:
            return _HAND_OVER
        method, target, version = parts
        if method not in _METHODS or version not in _VERSIONS or not target.startswith(self._prefix):
            return _HAND_OVER
        segment = target[len(self._prefix) :].partition(b"?")[0]
        if not segment or b"/" in segment or b"{" in segment or b"}" in segment:
            return _HAND_OVER  # not the route's one path segment: aiohttp answers (404)
        http11 = version == b"HTTP/1.1"
        keep = http11
        length = -1
        authorization = ""
        for line in bytes(buf[line_end + 2 : end]).split(b"\r\n"):
            name, colon, value = line.partition(b":")
            if not colon or b"\n" in line or name != name.strip():
                return _HAND_OVER  # malformed: aiohttp's parser says what is wrong
            name = name.lower()
            if name == b"content-length":
                value = value.strip()
                if length >= 0 or not value.isdigit():
                    return _HAND_OVER
                length = int(value)
            elif name == b"authorization":
                if not authorization:
                    authorization = value.strip().decode("latin-1")
            elif name == b"connection":
                tokens = value.lower()
                if b"close" in tokens:
                    keep = False
                elif b"keep-alive" in tokens:
                    keep = True
            elif name in (b"transfer-encoding", b"expect", b"upgrade"):
                return _HAND_OVER
        length = max(length, 0)
        if length > self._max_body:
            return _HAND_OVER
        start = end + 4
        if len(buf) < start + length:
            return None
        cid = segment.decode("latin-1")
        if "%" in cid:
            cid = unquote(cid)
        connection = _CLOSE if not keep else (b"" if http11 else _KEEP_ALIVE)
        body = bytes(buf[start : start + length])
        return start + length, method.decode(), cid, authorization, body, connection

    def _answer(
        self, method: str, cid: str, authorization: str, body: bytes, connection: bytes
    ) -> bytes | _Pending:
        started = time.perf_counter()
        try:
            result = eagerly(self._serve(method, cid, authorization, body))
        except Exception:
            log.exception("Management API %s failed", method)
            result = _INTERNAL
        if isinstance(result, asyncio.Task):
            pending = _Pending(result, connection, method, cid, started)
            result.add_done_callback(self._flush)
            return pending
        return self._encode(result, connection, method, cid, started)

    def _encode(self, reply: Reply, connection: bytes, method: str, cid: str, started: float) -> bytes:
        status, headers, body = reply
        if access_log.isEnabledFor(logging.INFO):
            ms = (time.perf_counter() - started) * 1000
            access_log.info("%s %s%s %s %.1fms", method, self._prefix.decode(), cid, status, ms)
        return _response(status, headers, body, connection)

    def _flush(self, _: object = None) -> None:
        """Write the answers at the head of the queue that are done, in order."""
        queue: deque[bytes | _Pending] = self._queue
        out: list[bytes] = []
        while queue:
            head = queue[0]
            if isinstance(head, bytes):
                out.append(head)
                queue.popleft()
                continue
            if not head.task.done():
                break
            queue.popleft()
            try:
                reply = head.task.result()
            except Exception:
                log.exception("Management API %s failed", head.method)
                reply = _INTERNAL
            except asyncio.CancelledError:
                reply = _INTERNAL
            out.append(self._encode(reply, head.connection, head.method, head.cid, head.started))
        transport = self._transport
        if out and transport is not None and not transport.is_closing():
            transport.write(b"".join(out))
        if not queue:
            self._settle()
        else:
            self._update_reading()

    def _settle(self) -> None:
        """Every answer is written: close, hand over, or read on."""
        transport = self._transport
        if transport is None:
            return
        if self._hand_over:
            self._hand_over_now(transport)
        elif self._closing or self._eof:
            transport.close()
            self._forget()
        else:
            self._update_reading()

    def _hand_over_now(self, transport: asyncio.Transport) -> None:
        rest, eof = bytes(self._buf), self._eof
        self._forget()
        if self._read_paused:
            transport.resume_reading()
        protocol = self._fallback()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if rest:
            protocol.data_received(rest)
        if eof and not protocol.eof_received():
            transport.close()

    def _update_reading(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        pause = self._write_paused or len(self._queue) >= MAX_QUEUED or self._hand_over or self._closing
        if pause and not self._read_paused:
            transport.pause_reading()
            self._read_paused = True
        elif not pause and self._read_paused:
            transport.resume_reading()
            self._read_paused = False

    def _idle(self) -> None:
        transport = self._transport
        if transport is None:
            return
        due = self._last + self._keepalive_s
        if self._queue or self._loop.time() < due:
            self._timer = self._loop.call_at(max(due, self._loop.time() + 1), self._idle)
            return
        transport.close()
        self._forget()

    def _forget(self) -> None:
        """This protocol serves the connection no more (closed or handed over)."""
        self._live.discard(self)
        self._transport = None
        self._buf.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
