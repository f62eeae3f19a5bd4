"""The single-threaded fan-out client against a scripted HTTP server: every post is answered,
whatever the server does with its connections."""

import socket
import threading
import time

import pytest

from collab.adapters.apigw.http_pool import Broadcaster, _parse


class Server:
    """Answers each request by `respond(path) -> bytes`; may close after each response."""

    def __init__(self, respond, close_after=False):
        self.respond, self.close_after = respond, close_after
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.paths = []
        self.conns = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = c.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, _, rest = buf.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                while len(rest) < length:
                    rest += c.recv(65536)
                buf = rest[length:]
                path = head.split(b" ")[1].decode()
                with self.lock:
                    self.paths.append(path)
                c.sendall(self.respond(path))
                if self.close_after:
                    c.close()
                    return
        except OSError:
            return

    def kill_connections(self):
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass

    def close(self):
        self.sock.close()
        self.kill_connections()


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


def reqs(n):
    return [
        f"POST /@connections/c{i} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi".encode()
        for i in range(n)
    ]


def test_fifty_posts_all_delivered_over_keep_alive_connections():
    srv = Server(lambda p: OK)
    b = Broadcaster("127.0.0.1", srv.port, tls=False, concurrency=8)
    assert b.send(reqs(50)) == [200] * 50
    assert sorted(srv.paths) == sorted(f"/@connections/c{i}" for i in range(50))
    assert len(srv.conns) <= 8  # connections were reused, not one per post
    b.close()
    srv.close()


def test_stale_idle_connections_are_replaced_and_nothing_is_lost():
    srv = Server(lambda p: OK)
    b = Broadcaster("127.0.0.1", srv.port, tls=False, concurrency=8)
    assert b.send(reqs(16)) == [200] * 16
    srv.kill_connections()  # as if the container was frozen past the server's idle timeout
    assert b.send(reqs(16)) == [200] * 16
    b.close()
    srv.close()


def test_idle_connections_closed_by_the_server_are_dropped_before_the_next_fan_out():
    srv = Server(lambda p: OK)
    b = Broadcaster("127.0.0.1", srv.port, tls=False, concurrency=8)
    assert b.send(reqs(16)) == [200] * 16
    assert len(b._idle) == 8
    srv.kill_connections()
    time.sleep(0.05)  # the FINs arrive
    before = len(srv.paths)
    assert b.send(reqs(8)) == [200] * 8
    # each post reached the server exactly once
    assert len(srv.paths) - before == 8
    # every open connection is registered once, and only open ones are
    assert len(b._sel.get_map()) == len(b._idle) == 8
    b.close()
    srv.close()


def test_registrations_follow_connections_closed_after_each_response():
    srv = Server(lambda p: b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", close_after=True)
    b = Broadcaster("127.0.0.1", srv.port, tls=False, concurrency=4)
    for _ in range(3):
        assert b.send(reqs(6)) == [200] * 6
        assert len(b._sel.get_map()) == len(b._idle) == 0
    b.close()
    srv.close()


def test_a_server_that_closes_after_each_response_http_1_0():
    srv = Server(lambda p: b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}", close_after=True)
    b = Broadcaster("127.0.0.1", srv.port, tls=False, concurrency=4)
    for _ in range(3):
        assert b.send(reqs(10)) == [200] * 10
    b.close()
    srv.close()


def test_gone_throttled_and_chunked_answers():
    counts = {}

    def respond(path):
        n = counts[path] = counts.get(path, 0) + 1
        if path.endswith("c1"):
            return b'HTTP/1.1 410 Gone\r\nContent-Length: 21\r\n\r\n{"message": "Gone"}\r\n'
        if path.endswith("c2") and n <= 2:
            return b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n"
        if path.endswith("c3"):
            return b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nnope\r\n0\r\n\r\n"
        return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"

    srv = Server(respond)
    b = Broadcaster("127.0.0.1", srv.port, tls=False, concurrency=4)
    assert b.send(reqs(5)) == [200, 410, 200, 403, 200]
    assert counts["/@connections/c2"] == 3  # throttled twice, then delivered
    b.close()
    srv.close()


def test_retries_are_bounded():
    srv = Server(lambda p: b"HTTP/1.1 503 Unavailable\r\nContent-Length: 0\r\n\r\n")
    b = Broadcaster("127.0.0.1", srv.port, tls=False, retries=2)
    assert b.send(reqs(2)) == [503, 503]
    assert len(srv.paths) == 6
    b.close()
    srv.close()


def test_an_unreachable_endpoint_fails_every_post():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    b = Broadcaster("127.0.0.1", port, tls=False, timeout=1)
    assert b.send(reqs(3)) == [599, 599, 599]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab", None),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", (200, True)),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", (200, False)),
        (b"HTTP/1.0 200 OK\r\n\r\n", (200, False)),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", (200, True)),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", None),
        (b"garbage\r\n\r\n", (599, False)),
    ],
)
def test_parse(raw, expected):
    assert _parse(bytearray(raw)) == expected
