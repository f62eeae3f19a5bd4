"""Concurrent Management API posts from one thread: a small non-blocking HTTP/1.1 client over TLS.

Why not a thread pool: fan-out is CPU-bound under the GIL, and 32 threads handing the GIL back and
forth cost ~500 us of CPU per post here (measured, bench/task_update.py). One thread driving up to
``concurrency`` keep-alive connections through a selector keeps every post in flight at once, as the
pool did, for tens of microseconds of CPU each: sign, write, read, parse the status line. It speaks
just enough HTTP/1.1 for API Gateway's answers (Content-Length or chunked bodies, keep-alive or
close). Throttled (429) and 5xx posts are retried with jittered backoff; a broken keep-alive
connection is reopened and its request sent again once.

What AWS adds, and how it is met:

* **Nothing blocks outside the selector.** A new connection is a non-blocking ``connect``; its TLS
  handshake is stepped (``do_handshake`` on readiness) like any read or write, so a cold
  container's first fan-out opens its connections and runs their handshakes at once, overlapping,
  instead of one after another before the first post leaves.
* **Connections grow with use**: a fan-out opens at most ``max_new`` (8) connections beyond the idle
  ones, so a new container's first fan-out is 8 handshakes and a few more waves, not 32 handshakes.
* **TLS sessions are reused**: the session of a finished handshake is offered by the next
  connection (an abbreviated handshake: no certificate chain to send or verify). Certificates are
  verified against the standard trust store (``collab.adapters.tls``: ``SSL_CERT_FILE``, or the
  system's CAs read lazily from their hashed directory).
* **The endpoint is resolved once per container** (per Broadcaster, which lives as long as the
  container), in a helper thread bounded by the deadline; its addresses are used in turn.
* **Every wait has a deadline**: ``send(..., deadline=)`` (an absolute ``time.monotonic()``, from
  the invocation's remaining time) and a hard cap (``timeout``). Whatever the endpoint does (accept
  and never answer, reset, trickle), ``send`` returns by then; what is not answered is 599.
"""

from __future__ import annotations

import errno
import heapq
import random
import selectors
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

RETRYABLE = frozenset((429, 500, 502, 503, 504))
FAILED = 599  # not answered: refused, reset, or out of time
_CONNECTING, _HANDSHAKING, _READY = 0, 1, 2
_RW = selectors.EVENT_READ | selectors.EVENT_WRITE


@dataclass(slots=True)
class Request:
    index: int
    data: bytes  # the full HTTP request (headers and body), signed
    attempts: int = 0
    conn_retries: int = 0


@dataclass(slots=True, eq=False)
class _Conn:
    sock: socket.socket
    state: int = _READY
    out: bytes = b""
    inbuf: bytearray = field(default_factory=bytearray)
    req: Request | None = None
    events: int = selectors.EVENT_READ  # what it is registered for
    fresh: bool = False  # handshake just done: its first response brings the session ticket


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
        context: ssl.SSLContext | None = None,
        max_new: int = 8,
    ) -> None:
        self.host, self.port, self.tls = host, port, tls
        self.concurrency = concurrency
        self.max_new = max_new
        self.timeout = timeout  # the hard cap of one send(), whatever deadline it is given
        self.retries = retries
        self._idle: list[_Conn] = []
        self._sel: selectors.BaseSelector = selectors.DefaultSelector()
        if tls and context is None:
            from collab.adapters.tls import client_context

            context = client_context()
        self._ctx = context if tls else None
        self._session: ssl.SSLSession | None = None
        self._addrs: list[tuple[int, tuple[object, ...]]] = []
        self._next_addr = 0
        # counters, for metrics and benchmarks
        self.connects = 0
        self.handshakes = 0
        self.resumed = 0

    # -- connections ----------------------------------------------------------------------------
    def _resolve(self, deadline: float) -> None:
        """The endpoint's addresses, once: getaddrinfo blocks, so it runs in a helper thread that
        this one waits for only until the deadline."""
        if self._addrs:
            return
        for family in (socket.AF_INET, socket.AF_INET6):
            try:
                socket.inet_pton(family, self.host)
            except OSError:
                continue
            self._addrs = [(family, (self.host, self.port))]  # an address already: nothing to look up
            return
        found: list[tuple[int, tuple[object, ...]]] = []

        def lookup() -> None:
            try:
                infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
            except OSError:
                return
            found.extend((family, tuple(addr)) for family, _, _, _, addr in infos)

        worker = threading.Thread(target=lookup, name="resolve", daemon=True)
        worker.start()
        worker.join(max(0.0, deadline - time.monotonic()))
        if found:
            self._addrs = found
        else:
            raise OSError(errno.EHOSTUNREACH, f"cannot resolve {self.host} in time")

    def _open(self, deadline: float) -> _Conn:
        """A connection on its way: connect started, nothing waited for."""
        self._resolve(deadline)
        family, addr = self._addrs[self._next_addr % len(self._addrs)]
        self._next_addr += 1
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = sock.connect_ex(addr)
        if err not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
            sock.close()
            self._addrs = []  # resolve again next time: the address may have moved
            raise OSError(err, "connect failed")
        self.connects += 1
        conn = _Conn(sock, state=_CONNECTING, events=selectors.EVENT_WRITE)
        self._sel.register(sock, selectors.EVENT_WRITE, conn)
        return conn

    def _want(self, conn: _Conn, events: int) -> None:
        if conn.events != events:
            conn.events = events
            self._sel.modify(conn.sock, events, conn)

    def _close(self, conn: _Conn) -> None:
        try:
            self._sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        try:
            conn.sock.close()
        except OSError:
            pass

    def _advance(self, conn: _Conn) -> bool:
        """Step a connection that is not ready yet (connected? handshake done?); False if it broke."""
        if conn.state == _CONNECTING:
            err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                return False
            if self._ctx is None:
                conn.state = _READY
                return True
            self._sel.unregister(conn.sock)
            try:
                conn.sock = self._ctx.wrap_socket(
                    conn.sock,
                    server_hostname=self.host,
                    do_handshake_on_connect=False,
                    session=self._session,
                )
            except (OSError, ValueError):
                return False
            self._sel.register(conn.sock, conn.events, conn)
            conn.state = _HANDSHAKING
        try:
            conn.sock.do_handshake()  # type: ignore[attr-defined]
        except ssl.SSLWantReadError:
            self._want(conn, selectors.EVENT_READ)
            return True
        except ssl.SSLWantWriteError:
            self._want(conn, selectors.EVENT_WRITE)
            return True
        except (OSError, ValueError):  # ssl.SSLError is an OSError: a bad certificate, a reset
            return False
        conn.state = _READY
        conn.fresh = True
        self.handshakes += 1
        if conn.sock.session_reused:  # type: ignore[attr-defined]
            self.resumed += 1
        return True

    def _idle_still_open(self, conn: _Conn) -> bool:
        """An idle connection turned readable: the server closed it (or sent something unasked), or,
        for a connection opened ahead of use (:meth:`warm`), TLS 1.3 delivered its session ticket,
        which the ``ssl`` module takes in without returning data. Only the latter keeps it."""
        if self._ctx is None or conn.state != _READY:
            return False
        try:
            chunk = conn.sock.recv(1)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            self._remember_session(conn)
            return True
        except OSError:
            return False
        del chunk  # b"": closed; anything else: data nobody asked for. Either way it is dropped
        return False

    def warm(self, n: int, *, deadline: float | None = None) -> int:
        """Open up to ``n`` connections (at most ``concurrency``) ahead of the first fan-out: what a new
        container does during its init, so that its first fan-out finds them ready. Connects and TLS
        handshakes overlap in the selector, as in :meth:`send`; whatever is not ready by ``deadline``
        (or ``timeout``) is closed. Returns how many idle connections the pool holds."""
        end = time.monotonic() + self.timeout
        if deadline is not None:
            end = min(end, deadline)
        pending: set[_Conn] = set()
        for _ in range(max(0, min(n, self.concurrency) - len(self._idle))):
            try:
                pending.add(self._open(end))
            except OSError:
                break
        while pending:
            left = end - time.monotonic()
            if left <= 0:
                break
            for key, _ in self._sel.select(min(0.05, left)):
                conn = key.data
                if conn not in pending:
                    if conn in self._idle and not self._idle_still_open(conn):
                        self._idle.remove(conn)
                        self._close(conn)
                    continue
                if not self._advance(conn):
                    pending.discard(conn)
                    self._close(conn)
                elif conn.state == _READY:
                    pending.discard(conn)
                    self._want(conn, selectors.EVENT_READ)
                    self._idle.append(conn)
        for conn in pending:
            self._close(conn)
        return len(self._idle)

    def _remember_session(self, conn: _Conn) -> None:
        """TLS 1.3 tickets arrive after the handshake, with the first response: keep the latest."""
        if conn.fresh:
            conn.fresh = False
            session = conn.sock.session  # type: ignore[attr-defined]
            if session is not None and session.has_ticket:
                self._session = session

    # -- one fan-out ----------------------------------------------------------------------------
    def send(
        self,
        requests: list[bytes],
        build: Callable[[int], bytes] | None = None,
        *,
        deadline: float | None = None,
    ) -> list[int]:
        """Send every request; ``build(i)`` re-signs request ``i`` for a retry (signatures age).
        Returns by ``deadline`` (``time.monotonic()``) or ``timeout`` from now, whichever is first."""
        statuses = [0] * len(requests)
        queue: deque[Request] = deque(Request(i, r) for i, r in enumerate(requests))
        delayed: list[tuple[float, int, Request]] = []
        sel = self._sel
        active: set[_Conn] = set()
        end = time.monotonic() + self.timeout
        if deadline is not None:
            end = min(end, deadline)
        remaining = len(requests)
        # Connections in flight: as many as make the fewest waves (50 posts at 32: 2 waves, so 25
        # connections), of which at most max_new new ones per fan-out: a cold container's first
        # fan-out pays 8 TLS handshakes (~1 ms of CPU each), not 32, and the pool grows over the
        # next fan-outs. Handshakes cost the sender's CPU; waves cost round trips (~1 ms in-region).
        waves = -(-len(requests) // self.concurrency) if requests else 1
        width = -(-len(requests) // waves) if requests else 1
        width = max(1, min(width, len(self._idle) + self.max_new))

        def write(conn: _Conn) -> None:
            while conn.out:
                try:
                    n = conn.sock.send(conn.out)
                except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                    break
                except OSError:
                    return  # the read side reports the broken connection
                conn.out = conn.out[n:]
            self._want(conn, _RW if conn.out else selectors.EVENT_READ)

        def start(conn: _Conn, req: Request) -> None:
            conn.req = req
            active.add(conn)
            if conn.state != _READY:
                return  # goes out once connected (and the handshake done)
            conn.out = req.data
            if conn.inbuf:
                conn.inbuf = bytearray()
            write(conn)

        def finish(conn: _Conn, status: int, keep: bool) -> None:
            nonlocal remaining
            req = conn.req
            assert req is not None
            active.discard(conn)
            conn.req = None
            self._want(conn, selectors.EVENT_READ)
            self._remember_session(conn)
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
                statuses[req.index] = FAILED
                remaining -= 1

        if self._idle:  # drop idle connections the server closed since the last call (no syscall each)
            for key, _ in sel.select(0):
                if not self._idle_still_open(key.data):
                    broken(key.data)
        while remaining:
            now = time.monotonic()
            if now >= end:
                break
            while delayed and delayed[0][0] <= now:
                queue.append(heapq.heappop(delayed)[2])
            while queue and len(active) < width:
                req = queue.popleft()
                try:
                    # a request whose reused connection broke goes out on a new one
                    conn = self._idle.pop() if self._idle and not req.conn_retries else self._open(end)
                except OSError:
                    statuses[req.index] = FAILED
                    remaining -= 1
                    continue
                start(conn, req)
            if not remaining:
                break
            wait = min(0.05, end - now)
            if delayed:
                wait = min(wait, max(0.0, delayed[0][0] - now))
            if not active:
                time.sleep(max(0.0, wait))
                continue
            for key, mask in sel.select(max(0.0, wait)):
                conn = key.data
                if conn.req is None:  # idle: closed by the server, or something unasked
                    if not self._idle_still_open(conn):
                        broken(conn)
                    continue
                if conn.state != _READY:
                    if not self._advance(conn):
                        broken(conn)
                    elif conn.state == _READY:
                        conn.out = conn.req.data
                        write(conn)
                    continue
                if mask & selectors.EVENT_WRITE and conn.out:
                    write(conn)
                if mask & selectors.EVENT_READ:
                    self._read(conn, finish, broken)
        if remaining:  # out of time: whatever is still open or waiting failed
            for conn in list(active):
                assert conn.req is not None
                statuses[conn.req.index] = FAILED
                self._close(conn)
            active.clear()
            for _, _, req in delayed:
                statuses[req.index] = FAILED
            for req in queue:
                statuses[req.index] = FAILED
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
        return FAILED, False
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
