"""Concurrent Management API posts from one thread: a small non-blocking HTTP/1.1 client.

Why not a thread pool: fan-out is CPU-bound under the GIL, and 32 threads handing the GIL back and
forth cost ~500 us of CPU per post here (measured, bench/task_update.py). One thread driving up to
``concurrency`` keep-alive connections through a selector keeps every post in flight at once, as the
pool did, for ~60-90 us of CPU each: sign, write, read, parse the status line. It speaks just
enough HTTP/1.1 for API Gateway's answers (Content-Length or chunked bodies, keep-alive or close),
and TLS in production. Throttled (429) and 5xx posts are retried with jittered backoff; a broken
keep-alive connection is reopened and its request sent again once.
"""

from __future__ import annotations

import heapq
import random
import selectors
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

RETRYABLE = frozenset((429, 500, 502, 503, 504))


@dataclass(slots=True)
class Request:
    index: int
    data: bytes  # the full HTTP request (headers and body), signed
    attempts: int = 0
    conn_retries: int = 0


@dataclass(slots=True, eq=False)
class _Conn:
    sock: socket.socket
    out: bytes = b""
    inbuf: bytearray = field(default_factory=bytearray)
    req: Request | None = None
    want_write: bool = False


class Broadcaster:
    """Sends many requests to one host concurrently; returns each one's HTTP status (599: failed).

    Its keep-alive connections stay registered with one selector for their whole life, so a post
    costs one ``send`` and one ``recv`` (no per-request registration); an idle connection that turns
    readable was closed by the server (or sent something unasked) and is dropped at once.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: bool,
        concurrency: int = 32,
        timeout: float = 5.0,
        retries: int = 3,
    ) -> None:
        self.host, self.port, self.tls = host, port, tls
        self.concurrency = concurrency
        self.timeout = timeout
        self.retries = retries
        self._idle: list[_Conn] = []
        self._sel: selectors.BaseSelector = selectors.DefaultSelector()
        self._ctx = ssl.create_default_context() if tls else None

    def _open(self) -> _Conn:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._ctx is not None:
            sock = self._ctx.wrap_socket(sock, server_hostname=self.host)
        sock.setblocking(False)
        conn = _Conn(sock)
        self._sel.register(sock, selectors.EVENT_READ, conn)
        return conn

    def _close(self, conn: _Conn) -> None:
        try:
            self._sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        try:
            conn.sock.close()
        except OSError:
            pass

    def send(self, requests: list[bytes], build: Callable[[int], bytes] | None = None) -> list[int]:
        """Send every request; ``build(i)`` re-signs request ``i`` for a retry (signatures age)."""
        statuses = [0] * len(requests)
        queue: deque[Request] = deque(Request(i, r) for i, r in enumerate(requests))
        delayed: list[tuple[float, int, Request]] = []
        sel = self._sel
        active: set[_Conn] = set()
        deadline = time.monotonic() + self.timeout * 2
        remaining = len(requests)

        def start(conn: _Conn, req: Request) -> None:
            conn.req, conn.out = req, req.data
            if conn.inbuf:
                conn.inbuf = bytearray()
            active.add(conn)
            _write(conn)
            if conn.out:
                conn.want_write = True
                sel.modify(conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, conn)

        def _write(conn: _Conn) -> None:
            while conn.out:
                try:
                    n = conn.sock.send(conn.out)
                except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                    return
                except OSError:
                    return  # the read side reports the broken connection
                conn.out = conn.out[n:]

        def finish(conn: _Conn, status: int, keep: bool) -> None:
            nonlocal remaining
            req = conn.req
            assert req is not None
            active.discard(conn)
            conn.req = None
            if conn.want_write:
                conn.want_write = False
                sel.modify(conn.sock, selectors.EVENT_READ, conn)
            if keep:
                conn.inbuf = bytearray()
                self._idle.append(conn)
            else:
                self._close(conn)
            if status in RETRYABLE and req.attempts < self.retries:
                delay = 0.025 * (2**req.attempts)
                req.attempts += 1
                if build is not None:
                    req.data = build(req.index)
                heapq.heappush(delayed, (time.monotonic() + delay + random.uniform(0, delay), req.index, req))
                return
            statuses[req.index] = status
            remaining -= 1

        def broken(conn: _Conn) -> None:
            nonlocal remaining
            req = conn.req
            active.discard(conn)
            self._close(conn)
            if req is None:  # an idle connection the server closed
                if conn in self._idle:
                    self._idle.remove(conn)
                return
            if req.conn_retries < 1:  # a keep-alive connection the server had closed: once more, fresh
                req.conn_retries += 1
                queue.appendleft(req)
                for idle in self._idle:  # its idle siblings are likely as stale (a frozen container)
                    self._close(idle)
                self._idle.clear()
            else:
                statuses[req.index] = 599
                remaining -= 1

        if self._idle:  # drop idle connections the server closed since the last call (no syscall each)
            for key, _ in sel.select(0):
                broken(key.data)
        while remaining:
            now = time.monotonic()
            while delayed and delayed[0][0] <= now:
                queue.append(heapq.heappop(delayed)[2])
            while queue and len(active) < self.concurrency:
                req = queue.popleft()
                try:
                    # a request whose reused connection broke goes out on a new one
                    conn = self._idle.pop() if self._idle and not req.conn_retries else self._open()
                except (OSError, ssl.SSLError):
                    statuses[req.index] = 599
                    remaining -= 1
                    continue
                start(conn, req)
            if not remaining:
                break
            if now > deadline:
                for conn in list(active):
                    assert conn.req is not None
                    statuses[conn.req.index] = 599
                    remaining -= 1
                    self._close(conn)
                active.clear()
                for _, _, req in delayed:
                    statuses[req.index] = 599
                for req in queue:
                    statuses[req.index] = 599
                break
            wait = min(0.05, max(0.0, delayed[0][0] - now)) if delayed else 0.05
            if not active:
                time.sleep(wait)
                continue
            for key, mask in sel.select(wait):
                conn = key.data
                if conn.req is None:  # idle: closed by the server, or something unasked
                    broken(conn)
                    continue
                if mask & selectors.EVENT_WRITE and conn.out:
                    _write(conn)
                    if not conn.out:
                        conn.want_write = False
                        sel.modify(conn.sock, selectors.EVENT_READ, conn)
                if mask & selectors.EVENT_READ:
                    self._read(conn, finish, broken)
        return statuses

    def _read(
        self, conn: _Conn, finish: Callable[[_Conn, int, bool], None], broken: Callable[[_Conn], None]
    ) -> None:
        while True:
            try:
                chunk = conn.sock.recv(65536)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            except OSError:
                broken(conn)
                return
            if not chunk:
                broken(conn)
                return
            conn.inbuf += chunk
            if not (self._ctx is not None and conn.sock.pending()):  # type: ignore[attr-defined]
                break
        parsed = _parse(conn.inbuf)
        if parsed is not None:
            status, keep = parsed
            finish(conn, status, keep)

    def close(self) -> None:
        for conn in self._idle:
            self._close(conn)
        self._idle.clear()
        self._sel.close()


def _header(head: bytes, name: bytes) -> bytes | None:
    """The value of header ``name`` (lower case, with its colon) in a lower-cased header block."""
    at = head.find(b"\r\n" + name)
    if at < 0:
        return None
    start = at + 2 + len(name)
    stop = head.find(b"\r\n", start)
    return head[start : stop if stop >= 0 else len(head)].strip()


def _parse(buf: bytearray) -> tuple[int, bool] | None:
    """(status, keep-alive) once a whole response is in ``buf``; None while it is incomplete."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buf[:end]).lower()
    try:
        status = int(head.split(b"\r\n", 1)[0].split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 599, False
    raw_length = _header(head, b"content-length:")
    length = int(raw_length) if raw_length else 0
    encoding = _header(head, b"transfer-encoding:")
    chunked = encoding is not None and b"chunked" in encoding
    connection = _header(head, b"connection:")
    # HTTP/1.0 closes unless it says keep-alive; HTTP/1.1 keeps alive unless it says close
    keep = connection == b"keep-alive" if connection is not None else not head.startswith(b"http/1.0")
    body = end + 4
    if chunked:
        pos = body
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
            pos = eol + 2 + size + 2
            if len(buf) < pos:
                return None
            if size == 0:
                return status, keep
    if len(buf) < body + length:
        return None
    return status, keep
