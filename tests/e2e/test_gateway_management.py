"""The Management API's own HTTP/1.1 server in the local gateway (``collab_dev.emulator.management_server``), over
raw sockets: keep-alive, pipelining, every answer of the Management API, and connections that begin
with another request (or turn to one) going on through aiohttp on the same port."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest
from websockets.sync.client import ClientConnection, connect

from collab_dev import permissions
from collab_dev.emulator.frame_limits import MAX_MESSAGE_BYTES
from tests.e2e import stub_handlers
from tests.e2e.harness import RunningGateway
from tests.e2e.test_gateway import closed_code, wait_for, whoami

pytestmark = pytest.mark.e2e

AUTH = (
    "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/execute-api/aws4_request,"
    " SignedHeaders=host;x-amz-date, Signature=00"
)
GONE_BODY = {"__type": "GoneException", "message": None}
NEVER = "AAAAAAAAAAAAAAA="  # a well-formed connection id that never existed


def api_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"statusCode": 201, "headers": {"X-Route": event["rawPath"]}, "body": "api"}


@pytest.fixture
def gw(start_gateway: Callable[..., RunningGateway]) -> RunningGateway:
    stub_handlers.reset()
    return start_gateway(routes=stub_handlers.ROUTES, http_api=api_handler, sweep_interval_s=None)


@pytest.fixture
def peer(gw: RunningGateway) -> Iterator[Callable[..., ClientConnection]]:
    with contextlib.ExitStack() as stack:

        def open_(**kwargs: Any) -> ClientConnection:
            url = f"{gw.ws_url}?token=ok"
            return stack.enter_context(connect(url, open_timeout=10, max_size=None, **kwargs))

        yield open_


def request(
    method: str,
    path: str,
    body: bytes = b"",
    *,
    auth: str | None = AUTH,
    headers: tuple[tuple[str, str], ...] = (),
    version: str = "HTTP/1.1",
) -> bytes:
    lines = [f"{method} {path} {version}", "Host: 127.0.0.1"]
    if auth is not None:
        lines.append(f"Authorization: {auth}")
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def at(cid: str) -> str:
    return f"/@connections/{quote(cid, safe='')}"  # as ManagementApi sends it: '=' is %3D


class Response:
    def __init__(self, status_line: str, headers: dict[str, str], body: bytes) -> None:
        self.status_line, self.headers, self.body = status_line, headers, body

    @property
    def status(self) -> int:
        return int(self.status_line.split(" ")[1])

    def json(self) -> Any:
        return json.loads(self.body)


class Raw:
    """One TCP connection to the gateway, speaking HTTP/1.1 by hand."""

    def __init__(self, gw: RunningGateway) -> None:
        self.sock = socket.create_connection(("127.0.0.1", gw.gateway.port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the gateway closed the connection")
        self.buf += chunk

    def response(self) -> Response:
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                while b"\r\n" not in self.buf:
                    self._fill()
                size_line, self.buf = self.buf.split(b"\r\n", 1)
                size = int(size_line.split(b";")[0], 16)
                while len(self.buf) < size + 2:
                    self._fill()
                body, self.buf = body + self.buf[:size], self.buf[size + 2 :]
                if size == 0:
                    return Response(status_line, headers, body)
        length = int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        return Response(status_line, headers, body)

    def closed_by_server(self, timeout: float = 10) -> bool:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw(gw: RunningGateway) -> Iterator[Callable[[], Raw]]:
    opened: list[Raw] = []

    def open_() -> Raw:
        r = Raw(gw)
        opened.append(r)
        return r

    yield open_
    for r in opened:
        r.close()


def lean_connections(gw: RunningGateway) -> int:
    """Connections the Management API's own server holds (the rest are aiohttp's)."""

    async def count() -> int:
        return len(gw.gateway._lean)

    return int(gw.run(count()))


def nothing_received(ws: ClientConnection, wait: float = 0.3) -> bool:
    try:
        ws.recv(timeout=wait)
    except TimeoutError:
        return True
    return False


def test_pipelined_post_get_delete_on_one_keep_alive_connection(
    gw: RunningGateway, raw: Callable[[], Raw], peer: Callable[..., ClientConnection]
) -> None:
    ws = peer(user_agent_header="lean-agent")
    cid = whoami(ws)
    conn = raw()

    # Two POSTs in one write: answered in order, delivered in order, as text frames.
    conn.send(request("POST", at(cid), b'{"n":1}') + request("POST", at(cid), b'{"n":2}'))
    first, second = conn.response(), conn.response()
    assert (first.status_line, second.status_line) == ("HTTP/1.1 200 OK", "HTTP/1.1 200 OK")
    assert lean_connections(gw) == 1
    assert first.body == second.body == b""
    assert ws.recv(timeout=10) == '{"n":1}'
    assert ws.recv(timeout=10) == '{"n":2}'

    # GET and DELETE in one write, on the same connection.
    conn.send(request("GET", at(cid)) + request("DELETE", at(cid)))
    info, deleted = conn.response(), conn.response()
    assert info.status_line == "HTTP/1.1 200 OK"
    assert info.headers["content-type"].startswith("application/json")
    described = info.json()
    assert described["identity"] == {"sourceIp": "127.0.0.1", "userAgent": "lean-agent"}
    assert described["Identity"] == {"SourceIp": "127.0.0.1", "UserAgent": "lean-agent"}
    assert described["connectedAt"] <= described["lastActiveAt"]
    assert deleted.status_line == "HTTP/1.1 204 No Content" and deleted.body == b""
    assert "content-length" not in deleted.headers
    assert closed_code(ws) == 1000

    # The connection is gone now, for every method; the keep-alive connection still serves.
    conn.send(request("POST", at(cid), b"late") + request("GET", at(cid)) + request("DELETE", at(cid)))
    for _ in range(3):
        gone = conn.response()
        assert gone.status_line == "HTTP/1.1 410 Gone"
        assert gone.headers["x-amzn-errortype"] == "GoneException"
        assert gone.json() == GONE_BODY


def test_post_to_a_connection_that_never_existed_is_gone(raw: Callable[[], Raw]) -> None:
    conn = raw()
    conn.send(request("POST", at(NEVER), b"{}"))
    gone = conn.response()
    assert gone.status == 410
    assert gone.headers["x-amzn-errortype"] == "GoneException"
    assert gone.json() == GONE_BODY


def test_a_request_without_sigv4_authorization_is_403(
    raw: Callable[[], Raw], peer: Callable[..., ClientConnection]
) -> None:
    ws = peer()
    cid = whoami(ws)
    conn = raw()
    conn.send(request("POST", at(cid), b"no", auth=None) + request("POST", at(cid), b"no", auth="Bearer x"))
    for _ in range(2):
        refused = conn.response()
        assert refused.status_line == "HTTP/1.1 403 Forbidden"
        assert refused.headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"
        assert refused.json() == {"message": "Missing Authentication Token"}
    assert nothing_received(ws)
    conn.send(request("POST", at(cid), b"yes"))  # the connection is still good
    assert conn.response().status == 200
    assert ws.recv(timeout=10) == "yes"


def test_post_over_128kb_is_413_and_128kb_passes(
    raw: Callable[[], Raw], peer: Callable[..., ClientConnection]
) -> None:
    ws = peer()
    cid = whoami(ws)
    conn = raw()
    conn.send(request("POST", at(cid), b"x" * (MAX_MESSAGE_BYTES + 1)))
    refused = conn.response()
    assert refused.status == 413
    assert refused.headers["x-amzn-errortype"] == "PayloadTooLargeException"
    assert refused.json() == {"message": "Request entity too large"}
    assert nothing_received(ws)
    conn.send(request("POST", at(cid), b"y" * MAX_MESSAGE_BYTES))
    assert conn.response().status == 200
    assert ws.recv(timeout=10) == "y" * MAX_MESSAGE_BYTES
    fresh = raw()  # the same, on a connection whose first request it is
    fresh.send(request("POST", at(cid), b"z" * MAX_MESSAGE_BYTES))
    assert fresh.response().status == 200
    assert ws.recv(timeout=10) == "z" * MAX_MESSAGE_BYTES


def test_a_body_that_is_not_utf8_is_a_binary_frame(
    raw: Callable[[], Raw], peer: Callable[..., ClientConnection]
) -> None:
    ws = peer()
    cid = whoami(ws)
    conn = raw()
    conn.send(request("POST", at(cid), b"\xff\xfe\x00"))
    assert conn.response().status == 200
    assert ws.recv(timeout=10) == b"\xff\xfe\x00"


def test_connection_close_and_http10_close_after_the_answer(
    raw: Callable[[], Raw], peer: Callable[..., ClientConnection]
) -> None:
    ws = peer()
    cid = whoami(ws)
    conn = raw()
    conn.send(request("POST", at(cid), b"bye", headers=(("Connection", "close"),)))
    answer = conn.response()
    assert answer.status == 200 and answer.headers["connection"] == "close"
    assert conn.closed_by_server()
    assert ws.recv(timeout=10) == "bye"

    old = raw()
    old.send(request("POST", at(cid), b"1.0", version="HTTP/1.0"))
    assert old.response().status == 200
    assert old.closed_by_server()
    assert ws.recv(timeout=10) == "1.0"

    kept = raw()
    kept.send(request("POST", at(cid), b"a", version="HTTP/1.0", headers=(("Connection", "keep-alive"),)))
    answer = kept.response()
    assert answer.status == 200 and answer.headers["connection"] == "keep-alive"
    kept.send(request("POST", at(cid), b"b", version="HTTP/1.0", headers=(("Connection", "keep-alive"),)))
    assert kept.response().status == 200
    assert [ws.recv(timeout=10), ws.recv(timeout=10)] == ["a", "b"]


def test_a_request_split_across_many_writes(
    raw: Callable[[], Raw], peer: Callable[..., ClientConnection]
) -> None:
    ws = peer()
    cid = whoami(ws)
    conn = raw()
    data = request("POST", at(cid), b'{"split":true}')
    for i in range(0, len(data), 7):
        conn.send(data[i : i + 7])
        time.sleep(0.002)
    assert conn.response().status == 200
    assert ws.recv(timeout=10) == '{"split":true}'


def test_a_websocket_handshake_sent_in_pieces_goes_to_aiohttp(
    gw: RunningGateway, raw: Callable[[], Raw]
) -> None:
    conn = raw()
    handshake = (
        f"GET /ws?token=ok HTTP/1.1\r\nHost: 127.0.0.1:{gw.gateway.port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    for i in range(0, len(handshake), 3):  # "GET /" could still be a Management API GET
        conn.send(handshake[i : i + 3])
        time.sleep(0.001)
    upgraded = conn.response()
    assert upgraded.status == 101
    assert upgraded.headers["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    wait_for(lambda: gw.connection_ids())


def test_a_connection_that_begins_elsewhere_stays_with_aiohttp(
    gw: RunningGateway, raw: Callable[[], Raw], peer: Callable[..., ClientConnection]
) -> None:
    ws = peer()
    cid = whoami(ws)

    page = raw()
    page.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    answer = page.response()
    assert answer.status == 200 and b"<html" in answer.body.lower()
    # The Management API on the same connection: aiohttp's route, the same rules.
    page.send(request("POST", at(cid), b"via aiohttp") + request("POST", at(NEVER), b"x"))
    assert page.response().status == 200
    gone = page.response()
    assert gone.status == 410 and gone.json() == GONE_BODY
    assert gone.headers["x-amzn-errortype"] == "GoneException"
    page.send(request("POST", at(cid), b"no", auth=None))
    refused = page.response()
    assert refused.status == 403
    assert refused.headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"
    assert ws.recv(timeout=10) == "via aiohttp"
    assert lean_connections(gw) == 0

    api = raw()
    api.send(request("GET", "/api/tasks", auth="Bearer t"))
    answer = api.response()
    assert answer.status == 201 and answer.headers["x-route"] == "/tasks" and answer.body == b"api"


def test_a_pipeline_that_turns_to_another_request_is_answered_in_order(
    raw: Callable[[], Raw], peer: Callable[..., ClientConnection]
) -> None:
    ws = peer()
    cid = whoami(ws)
    conn = raw()
    conn.send(
        request("POST", at(cid), b"one")
        + request("GET", "/api/next", auth="Bearer t")
        + request("POST", at(cid), b"two")
        + request("GET", at(cid))
    )
    assert conn.response().status == 200
    api = conn.response()
    assert api.status == 201 and api.headers["x-route"] == "/next"
    assert conn.response().status == 200
    info = conn.response()
    assert info.status == 200 and info.json()["identity"]["sourceIp"] == "127.0.0.1"
    assert [ws.recv(timeout=10), ws.recv(timeout=10)] == ["one", "two"]


def test_stop_closes_the_management_api_connections(start_gateway: Callable[..., RunningGateway]) -> None:
    gw = start_gateway(routes=stub_handlers.ROUTES, sweep_interval_s=None)
    kept = Raw(gw)
    kept.send(request("GET", at(NEVER)))
    assert kept.response().status == 410  # kept alive, held by the Management API's server
    undecided = Raw(gw)
    undecided.send(b"POST /@conn")  # not a whole request line yet
    time.sleep(0.1)
    assert lean_connections(gw) == 2
    gw.stop()
    assert kept.closed_by_server()
    assert undecided.closed_by_server()
    kept.close()
    undecided.close()


def _signed_by(function: str) -> str:
    key = permissions.access_key_for(function)
    return f"AWS4-HMAC-SHA256 Credential={key}/20260101/us-east-1/execute-api/aws4_request, SignedHeaders=host, Signature=0"


def test_a_function_whose_role_may_not_post_gets_403_as_in_aws(gw: RunningGateway, peer: Any) -> None:
    """collab_dev.permissions is enforced: connect's role has no execute-api:ManageConnections."""
    ws = peer()
    cid = whoami(ws)
    raw = Raw(gw)
    raw.send(request("POST", at(cid), b'{"n":1}', auth=_signed_by("connect")))
    refused = raw.response()
    assert refused.status == 403
    assert refused.headers["x-amzn-errortype"] == "AccessDeniedException"
    assert (
        "collab-connect is not authorized to perform: execute-api:ManageConnections"
        in refused.json()["Message"]
    )
    raw.send(request("POST", at(cid), b'{"n":2}', auth=_signed_by("disconnect")))
    assert raw.response().status == 200  # $disconnect posts presence.left: its role may
    assert json.loads(ws.recv(timeout=5)) == {"n": 2}
    assert len(gw.gateway.denied) == 1
