"""The local gateway keeps API Gateway's rules (contract section 6), driven by real WebSocket clients.

The gateway runs the small handlers of ``stub_handlers`` here, so these tests do not depend on the
project's functions; the browser tests run the real ones.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from collab.adapters.apigw.management import GONE, ManagementApi
from collab_dev.emulator.frame_limits import MAX_FRAME_BYTES, MAX_MESSAGE_BYTES, FrameMeter
from tests.e2e import stub_handlers
from tests.e2e.harness import RunningGateway

pytestmark = pytest.mark.e2e

CONNECTION_ID = re.compile(r"^[A-Za-z0-9_-]{15}=$")


@pytest.fixture
def gw(start_gateway: Callable[..., RunningGateway]) -> RunningGateway:
    stub_handlers.reset()
    return start_gateway(routes=stub_handlers.ROUTES, sweep_interval_s=None)


@pytest.fixture
def open_ws(gw: RunningGateway) -> Iterator[Callable[..., ClientConnection]]:
    with contextlib.ExitStack() as stack:

        def open_(
            token: str = "ok", gateway: RunningGateway | None = None, **kwargs: Any
        ) -> ClientConnection:
            url = f"{(gateway or gw).ws_url}?token={token}"
            return stack.enter_context(connect(url, open_timeout=10, max_size=None, **kwargs))

        yield open_


def ask(ws: ClientConnection, frame: str | bytes) -> dict[str, Any]:
    ws.send(frame)
    return dict(json.loads(ws.recv(timeout=10)))


def whoami(ws: ClientConnection) -> str:
    return str(ask(ws, "whoami")["connection_id"])


def closed_code(ws: ClientConnection, timeout: float = 10) -> int | None:
    """Read until the server closes; the close code it sent."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ws.recv(timeout=deadline - time.monotonic())
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else None
    raise AssertionError("the server did not close the connection")


def wait_for(predicate: Callable[[], Any], timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def disconnects(cid: str) -> list[dict[str, Any]]:
    return [e for e in stub_handlers.recorded("$disconnect") if e["requestContext"]["connectionId"] == cid]


def mgmt(gw: RunningGateway) -> Any:
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=gw.http_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


# -- routes --------------------------------------------------------------------------------------
def test_route_selection_on_action(open_ws: Callable[..., ClientConnection]) -> None:
    ws = open_ws()

    # Given an open connection, When frames with different actions arrive,
    # Then `heartbeat` goes to its route and everything else to $default.
    assert ask(ws, json.dumps({"action": "heartbeat"})) == {"type": "heartbeat.ack", "data": {}}
    assert ask(ws, json.dumps({"action": "task.update", "x": 1}))["route"] == "$default"
    assert ask(ws, "not json at all")["route"] == "$default"
    assert ask(ws, json.dumps({"action": 7}))["route"] == "$default"
    assert ask(ws, json.dumps(["heartbeat"]))["route"] == "$default"
    assert ask(ws, json.dumps({"action": "$connect"}))["route"] == "$default"
    assert ask(ws, json.dumps({"action": "$disconnect"}))["route"] == "$default"

    heartbeats = stub_handlers.recorded("heartbeat")
    assert len(heartbeats) == 1
    assert len(stub_handlers.recorded("$default")) == 6
    ws.send("no-reply")  # a handler without a body sends nothing back
    assert ask(ws, "after")["echo"] == "after"
    # As API Gateway with a route response: a returned body is sent, no body sends nothing. A quiet
    # heartbeat (v1.2) relies on it: it costs no message out.
    ws.send(json.dumps({"action": "heartbeat", "seq": 3, "mode": "away"}))
    assert ask(ws, "after the quiet heartbeat")["echo"] == "after the quiet heartbeat"
    assert len(stub_handlers.recorded("heartbeat")) == 2


def test_events_are_shaped_as_api_gateway_sends_them(
    gw: RunningGateway, open_ws: Callable[..., ClientConnection]
) -> None:
    ws = open_ws("ok&x=1&x=2", additional_headers={"X-Custom": "yes"}, user_agent_header="e2e-agent")
    ask(ws, json.dumps({"action": "sync", "since": None}))
    ws.close()
    wait_for(lambda: stub_handlers.recorded("$disconnect"))

    [conn] = stub_handlers.recorded("$connect")
    [msg] = stub_handlers.recorded("$default")
    [disc] = stub_handlers.recorded("$disconnect")
    cid = conn["requestContext"]["connectionId"]
    assert CONNECTION_ID.match(cid)

    # $connect: the upgrade's headers (original case) plus API Gateway's, and the query string.
    assert conn["headers"]["X-Custom"] == "yes"
    assert conn["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert conn["multiValueHeaders"]["X-Custom"] == ["yes"]
    assert conn["queryStringParameters"] == {"token": "ok", "x": "2"}
    assert conn["multiValueQueryStringParameters"] == {"token": ["ok"], "x": ["1", "2"]}
    assert conn["isBase64Encoded"] is False
    ctx = conn["requestContext"]
    assert ctx["routeKey"] == "$connect" and ctx["eventType"] == "CONNECT"
    assert ctx["messageDirection"] == "IN" and "messageId" not in ctx
    assert ctx["identity"] == {"sourceIp": "127.0.0.1", "userAgent": "e2e-agent"}
    assert ctx["domainName"] == f"127.0.0.1:{gw.gateway.port}"
    for key in ("stage", "apiId", "requestId", "extendedRequestId", "requestTime", "requestTimeEpoch"):
        assert ctx[key], key
    assert re.match(r"^\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000$", ctx["requestTime"])

    # MESSAGE: no headers, a messageId, the frame as body.
    assert "headers" not in msg and msg["isBase64Encoded"] is False
    assert json.loads(msg["body"]) == {"action": "sync", "since": None}
    mctx = msg["requestContext"]
    assert mctx["eventType"] == "MESSAGE" and mctx["routeKey"] == "$default"
    assert mctx["connectionId"] == cid and mctx["connectedAt"] == ctx["connectedAt"]
    assert CONNECTION_ID.match(mctx["messageId"])

    # DISCONNECT: the client's close code and API Gateway's fixed headers.
    dctx = disc["requestContext"]
    assert dctx["eventType"] == "DISCONNECT" and dctx["connectionId"] == cid
    assert dctx["disconnectStatusCode"] == 1000
    assert "disconnectReason" in dctx and "messageId" not in dctx
    assert set(disc["headers"]) == {"Host", "x-api-key", "X-Forwarded-For", "x-restapi"}


@pytest.mark.parametrize(("token", "status"), [("bad", 401), ("forbidden", 403), ("", 401)])
def test_refused_connect_is_the_handshake_status(gw: RunningGateway, token: str, status: int) -> None:
    with pytest.raises(InvalidStatus) as err:
        connect(f"{gw.ws_url}?token={token}", open_timeout=10)
    assert err.value.response.status_code == status
    assert err.value.response.body and b"error" in err.value.response.body
    # A refused connection never existed: no $disconnect for it.
    time.sleep(0.2)
    assert stub_handlers.recorded("$disconnect") == []


# -- Management API ------------------------------------------------------------------------------
def test_nothing_can_be_posted_during_connect(open_ws: Callable[..., ClientConnection]) -> None:
    ws = open_ws("post-self")
    assert stub_handlers.POSTS_DURING_CONNECT == [GONE]
    assert ask(ws, "hello")["echo"] == "hello"  # the connection itself is fine once accepted


def test_management_api_post_get_delete(gw: RunningGateway, open_ws: Callable[..., ClientConnection]) -> None:
    ws = open_ws(user_agent_header="mgmt-agent")
    cid = whoami(ws)
    client = mgmt(gw)  # boto3's own client: SigV4-signed requests, its parser for the answers

    # POST: one text frame, as sent.
    client.post_to_connection(ConnectionId=cid, Data=b'{"type":"ping","data":{}}')
    assert ws.recv(timeout=10) == '{"type":"ping","data":{}}'

    # GET: connection info, parsed by boto3 from the wire names.
    info = client.get_connection(ConnectionId=cid)
    assert info["Identity"] == {"SourceIp": "127.0.0.1", "UserAgent": "mgmt-agent"}
    assert info["ConnectedAt"] <= info["LastActiveAt"]

    # DELETE: closes it; $disconnect runs once.
    client.delete_connection(ConnectionId=cid)
    assert closed_code(ws) == 1000
    wait_for(lambda: disconnects(cid))

    # Afterwards the connection is gone for every method.
    with pytest.raises(client.exceptions.GoneException):
        client.post_to_connection(ConnectionId=cid, Data=b"late")
    with pytest.raises(client.exceptions.GoneException):
        client.get_connection(ConnectionId=cid)
    with pytest.raises(client.exceptions.GoneException):
        client.delete_connection(ConnectionId=cid)
    assert ManagementApi(gw.http_url).post("AAAAAAAAAAAAAAA=", b"{}") == GONE  # never existed
    time.sleep(0.2)
    assert len(disconnects(cid)) == 1


def test_management_api_wants_a_signed_request(
    gw: RunningGateway, open_ws: Callable[..., ClientConnection]
) -> None:
    cid = whoami(open_ws())
    req = urllib.request.Request(f"{gw.http_url}/@connections/{cid}", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 403


def test_post_over_128kb_is_refused(gw: RunningGateway, open_ws: Callable[..., ClientConnection]) -> None:
    ws = open_ws()
    cid = whoami(ws)
    client = mgmt(gw)
    with pytest.raises(client.exceptions.PayloadTooLargeException):
        client.post_to_connection(ConnectionId=cid, Data=b"x" * (MAX_MESSAGE_BYTES + 1))
    client.post_to_connection(ConnectionId=cid, Data=b"y" * MAX_MESSAGE_BYTES)
    assert ws.recv(timeout=10) == "y" * MAX_MESSAGE_BYTES


def test_a_route_response_over_128kb_is_not_delivered(
    gw: RunningGateway, open_ws: Callable[..., ClientConnection]
) -> None:
    """Counted in UTF-8 bytes, as API Gateway counts: 32,768 emoji are 128 KB, one more is over."""
    ws = open_ws()
    ws.send(f"reply-bytes:{MAX_MESSAGE_BYTES}")
    assert len(ws.recv(timeout=10).encode()) == MAX_MESSAGE_BYTES
    ws.send(f"reply-bytes:{MAX_MESSAGE_BYTES + 1}")
    assert ask(ws, "whoami")["route"] == "$default"  # the next reply is the whoami's: nothing between
    assert wait_for(lambda: gw.gateway.oversized) == [MAX_MESSAGE_BYTES + 1]


# -- size rules ----------------------------------------------------------------------------------
def test_frame_of_32kb_passes_and_one_byte_more_closes_with_1009(
    open_ws: Callable[..., ClientConnection],
) -> None:
    ws = open_ws()
    cid = whoami(ws)
    assert len(ask(ws, "a" * MAX_FRAME_BYTES)["echo"]) == MAX_FRAME_BYTES

    ws.send("b" * (MAX_FRAME_BYTES + 1))
    assert closed_code(ws) == 1009
    [disc] = wait_for(lambda: disconnects(cid))
    assert disc["requestContext"]["disconnectStatusCode"] == 1009
    assert disc["requestContext"]["disconnectReason"] == "Message too big"
    # The oversized frame never reached a handler.
    assert all(len(e["body"]) <= MAX_FRAME_BYTES for e in stub_handlers.recorded("$default"))


def test_fragmented_message_up_to_128kb_passes_and_more_closes_with_1009(
    open_ws: Callable[..., ClientConnection],
) -> None:
    ws = open_ws()
    cid = whoami(ws)
    chunk = 32 * 1024  # each fragment within the frame limit

    # 4 x 32 KB = 128 KB: one message of exactly the limit, delivered whole to $default.
    ws.send(iter(["c" * chunk] * 4))
    assert json.loads(ws.recv(timeout=10))["echo_length"] == 4 * chunk

    # 5 x 32 KB: every frame is fine, the message is not. The gateway closes as soon as the message
    # passes 128 KB, which may be while this side is still sending its last fragment: either way the
    # close code is 1009.
    code: int | None = None
    try:
        ws.send(iter(["d" * chunk] * 5))
    except ConnectionClosed as closed:
        code = closed.rcvd.code if closed.rcvd else None
    else:
        code = closed_code(ws)
    assert code == 1009
    [disc] = wait_for(lambda: disconnects(cid))
    assert disc["requestContext"]["disconnectStatusCode"] == 1009


def test_frame_meter_follows_headers_split_across_reads() -> None:
    # Given masked client frames fed one byte at a time (the worst split a socket can produce)
    def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
        n = len(payload)
        head = bytes([(0x80 if fin else 0) | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
        else:
            head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
        return head + b"\x00\x00\x00\x00" + payload

    meter = FrameMeter()
    stream = frame(1, b"x" * 125) + frame(9, b"ping") + frame(1, b"y" * 40_000, fin=False)
    verdicts = [meter.feed(stream[i : i + 1]) for i in range(len(stream))]
    # Then only the 40,000-byte frame is reported, at its header, with where it began
    found = [v for v in verdicts if v]
    assert len(found) == 1 and found[0].rule == "frame" and found[0].size == 40_000

    whole = FrameMeter().feed(frame(1, b"ok") + frame(2, b"z" * (MAX_FRAME_BYTES + 1)))
    assert whole is not None and whole.at == 2 + 4 + 2


# -- time limits and $disconnect -----------------------------------------------------------------
# Time limits without wall-clock thresholds. The gateway's timers run on the loop's monotonic clock;
# what a test can hold it to, on a loaded 2-core machine under -n 2, is: never early (a time taken
# before the last frame is a lower bound), and eventually (LATE_S, far past any limit here, bounds
# the wait so a gateway that never closes fails instead of hanging). How late is load, not a bug.
IDLE_S = 3.0  # long against the busy client's 0.1 s pings: a stalled test thread cannot starve it
LATE_S = 60.0


def test_idle_connection_closes_after_the_idle_timeout(
    start_gateway: Callable[..., RunningGateway], open_ws: Callable[..., ClientConnection]
) -> None:
    gw = start_gateway(routes=stub_handlers.ROUTES, idle_timeout_s=IDLE_S, sweep_interval_s=None)
    busy = open_ws(gateway=gw)
    idle = open_ws(gateway=gw)
    before_last_word = time.monotonic()
    idle_id = whoami(idle)

    # Given one connection that talks every 0.1 s (from a thread) and one that says nothing
    stop, talked, failed = threading.Event(), [], []

    def talk() -> None:
        try:
            while not stop.is_set():
                talked.append(ask(busy, json.dumps({"action": "heartbeat"}))["type"])
                time.sleep(0.1)
        except Exception as exc:
            failed.append(exc)

    talker = threading.Thread(target=talk, daemon=True)
    talker.start()
    try:
        # Then the silent one is closed with 1001, not before its idle timeout
        assert closed_code(idle, timeout=LATE_S) == 1001
        assert time.monotonic() - before_last_word >= IDLE_S
    finally:
        stop.set()
        talker.join(LATE_S)
    [disc] = wait_for(lambda: disconnects(idle_id))
    assert disc["requestContext"]["disconnectStatusCode"] == 1001
    # and the busy one, never idle that long, is open
    assert failed == [] and set(talked) == {"heartbeat.ack"}
    assert ask(busy, "still here")["echo"] == "still here"


def test_connection_closes_at_its_maximum_duration(
    start_gateway: Callable[..., RunningGateway], open_ws: Callable[..., ClientConnection]
) -> None:
    gw = start_gateway(routes=stub_handlers.ROUTES, max_connection_s=1.0, sweep_interval_s=None)
    before_open = time.monotonic()
    ws = open_ws(gateway=gw)

    def keep_busy() -> None:  # activity does not extend the maximum duration
        while time.monotonic() - before_open < LATE_S:
            ask(ws, json.dumps({"action": "heartbeat"}))
            time.sleep(0.1)

    with pytest.raises(ConnectionClosed) as err:
        keep_busy()
    assert err.value.rcvd is not None and err.value.rcvd.code == 1001
    assert time.monotonic() - before_open >= 1.0  # never early; how late is the machine's load


def test_disconnect_runs_once_whatever_closes_the_connection(
    gw: RunningGateway, open_ws: Callable[..., ClientConnection]
) -> None:
    by_client = open_ws()
    by_client_id = whoami(by_client)
    by_delete = open_ws()
    by_delete_id = whoami(by_delete)
    at_shutdown = open_ws()
    at_shutdown_id = whoami(at_shutdown)

    by_client.close(code=4000, reason="bye")
    # A DELETE racing the client's own close: still one $disconnect.
    by_delete.close()
    ManagementApi(gw.http_url).delete(by_delete_id)
    gw.stop()  # closes what is left with 1001 and waits for its $disconnect
    assert closed_code(at_shutdown) == 1001

    assert [e["requestContext"]["disconnectStatusCode"] for e in disconnects(by_client_id)] == [4000]
    assert [e["requestContext"]["disconnectReason"] for e in disconnects(by_client_id)] == ["bye"]
    assert len(disconnects(by_delete_id)) == 1
    assert [e["requestContext"]["disconnectStatusCode"] for e in disconnects(at_shutdown_id)] == [1001]


# -- HTTP API, sweeper, static files -------------------------------------------------------------
def test_http_api_gets_payload_format_2(start_gateway: Callable[..., RunningGateway]) -> None:
    seen: list[dict[str, Any]] = []

    def api(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.append(event)
        assert context.get_remaining_time_in_millis() > 0 and context.aws_request_id
        return {
            "statusCode": 201,
            "headers": {"Content-Type": "application/json", "X-Route": event["rawPath"]},
            "body": json.dumps({"ok": True}),
        }

    gw = start_gateway(routes=stub_handlers.ROUTES, http_api=api, sweep_interval_s=None)
    req = urllib.request.Request(
        f"{gw.http_url}/api/workspaces/w1/tasks?limit=5&tag=a&tag=b",
        data=b'{"title":"x"}',
        method="POST",
        headers={"Authorization": "Bearer abc", "Content-Type": "application/json", "X-Multi": "1"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 201
        assert resp.headers["X-Route"] == "/workspaces/w1/tasks"
        assert json.loads(resp.read()) == {"ok": True}

    [event] = seen
    assert event["version"] == "2.0" and event["routeKey"] == "$default"
    assert event["rawPath"] == "/workspaces/w1/tasks"
    assert event["rawQueryString"] == "limit=5&tag=a&tag=b"
    assert event["queryStringParameters"] == {"limit": "5", "tag": "a,b"}
    assert event["headers"]["authorization"] == "Bearer abc"
    assert all(name == name.lower() for name in event["headers"])
    assert event["body"] == '{"title":"x"}' and event["isBase64Encoded"] is False
    http = event["requestContext"]["http"]
    assert http["method"] == "POST" and http["path"] == "/workspaces/w1/tasks"
    assert http["protocol"] == "HTTP/1.1" and http["sourceIp"] == "127.0.0.1"
    ctx = event["requestContext"]
    assert ctx["stage"] == "$default" and ctx["routeKey"] == "$default"
    for key in ("requestId", "time", "timeEpoch", "accountId", "apiId", "domainName"):
        assert ctx[key], key


def test_sweeper_runs_on_its_schedule(start_gateway: Callable[..., RunningGateway]) -> None:
    seen: list[dict[str, Any]] = []

    def sweeper(event: dict[str, Any], context: Any) -> None:
        seen.append(event)

    start_gateway(routes=stub_handlers.ROUTES, sweeper=sweeper, sweep_interval_s=0.2)
    wait_for(lambda: len(seen) >= 2, timeout=10)
    assert seen[0]["detail-type"] == "Scheduled Event" and seen[0]["source"] == "aws.events"
    assert seen[0]["resources"][0].startswith("arn:aws:events:")


def test_demo_page_is_served(gw: RunningGateway) -> None:
    with urllib.request.urlopen(f"{gw.http_url}/", timeout=10) as resp:
        assert resp.status == 200 and b"<html" in resp.read().lower()
    with urllib.request.urlopen(f"{gw.http_url}/collab-client.js", timeout=10) as resp:
        assert "javascript" in resp.headers["Content-Type"]
