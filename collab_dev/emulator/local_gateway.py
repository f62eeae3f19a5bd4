"""The local gateway: API Gateway's WebSocket API, Management API and HTTP API on one aiohttp port.

Nothing else runs an API Gateway WebSocket API with Python Lambda handlers offline, so this keeps
the rules the handlers are written against, and fails locally where AWS would fail:

* ``GET /ws?token=...`` upgrades to a WebSocket after ``$connect`` answers 200; any other status
  refuses the handshake with that status. While ``$connect`` runs, the connection exists but
  nothing can be posted to it (410), as in API Gateway.
* Every data frame is routed on ``$request.body.action``: a JSON object whose string ``action`` is a
  configured route key goes to that route, anything else to ``$default``. A handler's ``body`` is
  sent back as the route response. Handlers run concurrently, as Lambda runs containers: the
  project's functions in worker processes (``worker_pool``, ``processes=N``; ``collab dev`` does
  this) or, by default, in a thread pool of this process; nothing orders two frames of one
  connection (API Gateway does not either).
* Frames over 32 KB and messages over 128 KB close the connection with 1009 (see ``frame_limits``).
* Idle connections close after 10 minutes, every connection after 2 hours; ``$disconnect`` runs
  exactly once per accepted connection, whatever closed it.
* ``/@connections/{id}``: POST (one text frame), GET (connection info), DELETE (close), 410 with
  ``GoneException`` for a connection that is unknown, connecting or closed. Requests must carry a
  SigV4 ``Authorization`` header (the handlers sign theirs); signatures are not verified. A
  connection whose requests are all of this kind is served by a small HTTP/1.1 server of its own
  (``management_server``: aiohttp's costs several times the WebSocket send per post); any other request
  hands its connection to aiohttp, where the same rules answer (``_manage``).
* ``/api/...``: the HTTP API handler with payload format 2.0 events; ``/``: the demo page.
* The sweeper is invoked every minute with EventBridge's scheduled event.
* ``POST /2015-03-31/functions/{name}/invocations``: Lambda's Invoke API for the functions other
  functions invoke (the fan-out function): ``X-Amz-Invocation-Type: Event`` answers 202 and runs the
  function in the background, ``RequestResponse`` (the default) answers with its result. As in AWS: a
  SigV4 ``Authorization`` header, 403 ``AccessDeniedException`` for a caller whose role may not
  invoke it (``collab_dev.permissions``), 413 over 1 MB for an asynchronous payload (6 MB otherwise).

Close codes and ``disconnectReason`` values: a client's close frame is reported as sent (1005
"Client-side close frame status not set" when it had no code); a dropped TCP connection as 1006;
idle timeout, maximum duration and shutdown as 1001 "Going away"; a Management API DELETE as 1000;
size violations as 1009 "Message too big".
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import socket
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http import WebSocketError, WebSocketWriter

from collab_dev import permissions
from collab_dev.emulator import lambda_events
from collab_dev.emulator.frame_limits import MAX_MESSAGE_BYTES, FrameMeter
from collab_dev.emulator.lambda_events import LambdaContext, Peer
from collab_dev.emulator.lambda_loader import (
    HTTP_API,
    INVOKED,
    SWEEPER,
    Handler,
    LambdaFunction,
    function_name,
    project_root,
    websocket_routes,
)
from collab_dev.emulator.management_server import LeanHttpProtocol, Reply
from collab_dev.emulator.worker_pool import WorkerPool

log = logging.getLogger("collab_dev.emulator")

# API Gateway's WebSocket quotas (not adjustable in AWS; adjustable here so tests can wait 1 s):
IDLE_TIMEOUT_S = 10 * 60.0  # "Idle Connection Timeout: 10 minutes" -> clients heartbeat every 30 s
MAX_CONNECTION_S = 2 * 3600.0  # "Maximum connection duration: 2 hours" -> clients must reconnect
SWEEP_INTERVAL_S = 60.0  # the sweeper's EventBridge schedule: rate(1 minute)
POST_MAX_BYTES = MAX_MESSAGE_BYTES  # PostToConnection refuses more than 128 KB (413)
# Lambda's Invoke payload quotas: 1 MB asynchronous (256 KB before 2025), 6 MB synchronous.
INVOKE_ASYNC_MAX_BYTES = 1024 * 1024
INVOKE_SYNC_MAX_BYTES = 6 * 1024 * 1024
WORKERS = 32  # concurrent invocations; like Lambda's concurrency, more than a dev box ever needs
CLOSE_TIMEOUT_S = 5.0  # how long a server-side close waits for the client's close frame


@dataclass(eq=False)
class _Connection:
    peer: Peer
    ws: web.WebSocketResponse | None = None
    open: bool = False  # True from the end of a successful $connect until a close begins
    opened_at: float = 0.0  # loop time
    last_active: float = 0.0  # loop time of the last data frame either way (the idle timer)
    last_active_ms: int = 0
    close_code: int | None = None  # set by whoever closes it; reported to $disconnect
    close_reason: str = ""
    disconnected: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def touch(self) -> None:
        self.last_active = asyncio.get_running_loop().time()
        self.last_active_ms = lambda_events.now_ms()

    def closing(self, code: int, reason: str) -> bool:
        """Begin a close; False when one already began (the first cause is the one reported)."""
        if self.close_code is not None:
            return False
        self.open = False
        self.close_code, self.close_reason = code, reason
        return True


@dataclass(frozen=True, slots=True)
class ConnectionView:
    """A connection as seen from outside (tests, logs); never includes the ticket."""

    connection_id: str
    open: bool
    source_ip: str
    user_agent: str
    connected_at_ms: int
    last_active_ms: int


class _MeteredParser:
    """Wraps aiohttp's WebSocket reader: bytes pass a :class:`FrameMeter` before it parses them.

    On the first violation the frames before it are still parsed, then the reader's queue gets the
    same ``WebSocketError(1009)`` aiohttp raises for its own size limit, so ``receive()`` closes
    the connection with 1009 exactly as it would for an oversized message.
    """

    def __init__(self, inner: Any, queue: Any, on_violation: Any) -> None:
        self._inner = inner
        self._queue = queue
        self._meter = FrameMeter()
        self._on_violation = on_violation
        self._failed = False

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if self._failed:
            return True, b""
        raw = bytes(data)
        verdict = self._meter.feed(raw)
        if verdict is None:
            result: tuple[bool, bytes] = self._inner.feed_data(raw)
            return result
        self._failed = True
        if verdict.at:
            self._inner.feed_data(raw[: verdict.at])
        self._on_violation(verdict)
        self._queue.set_exception(WebSocketError(WSCloseCode.MESSAGE_TOO_BIG, "Message too big"))
        return True, b""

    def feed_eof(self) -> None:
        self._inner.feed_eof()


class _MeteredWebSocket(web.WebSocketResponse):
    """aiohttp's WebSocketResponse with API Gateway's frame and message limits on what it reads.

    aiohttp has no hook for per-frame limits, so the parser it installs on the connection is
    wrapped right after it is installed (``_post_start``). The e2e size tests fail if a future
    aiohttp changes that seam.
    """

    def __init__(self, on_violation: Any) -> None:
        # No compression: API Gateway does not negotiate permessage-deflate. aiohttp's own message
        # limit stays one byte above ours as a backstop; the meter is the rule.
        super().__init__(compress=False, max_msg_size=MAX_MESSAGE_BYTES + 1, timeout=CLOSE_TIMEOUT_S)
        self._on_violation = on_violation

    def _post_start(self, request: web.BaseRequest, protocol: str | None, writer: WebSocketWriter) -> None:
        super()._post_start(request, protocol, writer)
        proto: Any = request.protocol
        proto._payload_parser = _MeteredParser(proto._payload_parser, self._reader, self._on_violation)


class _AccessLogger(AbstractAccessLogger):
    """Method, path without the query string (it carries tickets), status and duration."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info("%s %s %s %.1fms", request.method, request.path, response.status, time * 1000)


def _setting(explicit: float | None, name: str, default: float) -> float:
    """An explicit argument, else the environment variable, else API Gateway's value."""
    if explicit is not None:
        return explicit
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name}: must be a number of seconds") from None


def _json(status: int, body: Any, error_type: str | None = None) -> Reply:
    headers = [("Content-Type", "application/json; charset=utf-8")]
    if error_type is not None:
        headers.append(("x-amzn-ErrorType", error_type))
    return status, tuple(headers), json.dumps(body).encode()


# The Management API's answers (what API Gateway sends and boto3 parses).
_MISSING_TOKEN = _json(
    403, {"message": "Missing Authentication Token"}, "MissingAuthenticationTokenException"
)
_GONE = _json(410, {"__type": "GoneException", "message": None}, "GoneException")
_TOO_LARGE = _json(413, {"message": "Request entity too large"}, "PayloadTooLargeException")
_POSTED: Reply = (200, (), b"")
_DELETED: Reply = (204, (), b"")


def _invoke_error(status: int, message: str, error_type: str) -> Reply:
    """An error of Lambda's Invoke API, as Lambda answers it."""
    return _json(status, {"Type": "User", "Message": message}, error_type)


def _response(reply: Reply) -> web.Response:
    status, headers, body = reply
    return web.Response(status=status, headers=dict(headers), body=body or None)


class LocalGateway:
    """One port: ``/ws`` (WebSocket API), ``/@connections/{id}`` (Management API), ``/api/...``
    (HTTP API), ``/`` (the demo page from ``web/``).

    ``routes`` maps WebSocket route keys (``$connect``, ``$disconnect``, ``$default``, custom keys
    such as ``heartbeat``) to handlers; by default the project's functions. Explicit arguments win
    over ``COLLAB_IDLE_TIMEOUT_S`` / ``COLLAB_MAX_CONNECTION_S``, which win over API Gateway's
    values. ``export_environment`` points the handlers at this gateway (``CONNECTIONS_ENDPOINT``,
    ``WEBSOCKET_URL``, placeholder AWS credentials for their signer) before they are imported.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        routes: Mapping[str, Handler] | None = None,
        http_api: Handler | None = None,
        sweeper: Handler | None = None,
        functions: Mapping[str, Handler] | None = None,
        web_dir: Path | None = None,
        idle_timeout_s: float | None = None,
        max_connection_s: float | None = None,
        sweep_interval_s: float | None = SWEEP_INTERVAL_S,
        export_environment: bool = True,
        workers: int = WORKERS,
        processes: int = 0,
        concurrency: Mapping[str, int] | None = None,
    ) -> None:
        root = project_root()
        if routes is None:
            routes = websocket_routes(root)
            http_api = http_api or LambdaFunction(HTTP_API, root)
            sweeper = sweeper or LambdaFunction(SWEEPER, root)
            functions = functions or {name: LambdaFunction(name, root) for name in INVOKED}
        self.host = host
        self._requested_port = port
        self.routes = dict(routes)
        self.http_api = http_api
        self.sweeper = sweeper
        # functions invoked through the Invoke API, by folder name (collab-<name> in AWS)
        self.functions: dict[str, Handler] = dict(functions or {})
        self.invocations: dict[str, int] = {}  # asynchronous invocations accepted, per function
        self.web_dir = web_dir if web_dir is not None else root / "web"
        self.idle_timeout_s = _setting(idle_timeout_s, "COLLAB_IDLE_TIMEOUT_S", IDLE_TIMEOUT_S)
        self.max_connection_s = _setting(max_connection_s, "COLLAB_MAX_CONNECTION_S", MAX_CONNECTION_S)
        self.sweep_interval_s = sweep_interval_s
        self.export_environment = export_environment
        self._workers = workers
        # The project's functions in worker processes (0: in the thread pool of this process).
        self.processes = WorkerPool(processes, root, concurrency) if processes else None
        self._functions: dict[str, LambdaFunction] = {}
        self._conns: dict[str, _Connection] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pool: ThreadPoolExecutor | None = None
        self._runner: web.AppRunner | None = None
        self._server: asyncio.AbstractServer | None = None
        self.denied: list[str] = []  # Management API calls refused for a missing permission
        self.oversized: list[int] = []  # sizes of route responses not delivered (over 128 KB)
        self._lean: set[LeanHttpProtocol] = set()  # connections the Management API's server holds
        self._sweeper_task: asyncio.Task[None] | None = None
        self.port = 0

    # -- addresses -------------------------------------------------------------------------------
    @property
    def _public_host(self) -> str:
        return "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host  # noqa: S104 - a comparison

    @property
    def http_url(self) -> str:
        return f"http://{self._public_host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self._public_host}:{self.port}/ws"

    # -- life cycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        self.port = sock.getsockname()[1]
        if self.export_environment:
            self._export_environment()
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="lambda")
        if self.processes is not None:
            self.processes.start()  # after _export_environment: the workers read the endpoint
        app = web.Application(client_max_size=10 * 1024 * 1024)  # HTTP API's 10 MB payload quota
        app.router.add_get("/ws", self._websocket)
        for method in ("POST", "GET", "DELETE"):
            app.router.add_route(method, "/@connections/{connection_id}", self._management)
        app.router.add_post("/2015-03-31/functions/{name}/invocations", self._lambda_invoke)
        app.router.add_route("*", "/api", self._http)
        app.router.add_route("*", "/api/{tail:.*}", self._http)
        if self.web_dir.is_dir():
            app.router.add_get("/", self._index)
            app.router.add_static("/", self.web_dir, follow_symlinks=False)
        app.on_response_prepare.append(self._no_cache)
        self._runner = web.AppRunner(app, access_log_class=_AccessLogger, handle_signals=False)
        await self._runner.setup()
        aiohttp_protocol = self._runner.server  # aiohttp's protocol factory (web.SockSite's)
        assert aiohttp_protocol is not None

        def protocol() -> LeanHttpProtocol:
            # Each connection starts with the Management API's server; any other request hands it
            # to aiohttp's.
            return LeanHttpProtocol(
                "/@connections/", self._manage, aiohttp_protocol, self._lean, max_body=POST_MAX_BYTES
            )

        self._server = await asyncio.get_running_loop().create_server(protocol, sock=sock, backlog=128)
        if self.sweeper is not None and self.sweep_interval_s:
            self._sweeper_task = asyncio.create_task(self._sweep_forever(self.sweep_interval_s))

    def _export_environment(self) -> None:
        os.environ["CONNECTIONS_ENDPOINT"] = self.http_url
        os.environ["WEBSOCKET_URL"] = self.ws_url
        if not (os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY")):
            # The handlers sign Management API requests; the gateway accepts any signature.
            os.environ["AWS_ACCESS_KEY_ID"] = "local"
            os.environ["AWS_SECRET_ACCESS_KEY"] = "local"  # a placeholder, never checked
        os.environ["LAMBDA_ENDPOINT_URL"] = self.http_url
        if "fanout" in self.functions:  # large fan-outs are split across invocations, as in AWS
            os.environ["FANOUT_FUNCTION"] = "collab-fanout"
        os.environ.setdefault("AWS_REGION", lambda_events.REGION)
        os.environ.setdefault("AWS_DEFAULT_REGION", lambda_events.REGION)
        # Handlers already loaded in this process (an earlier gateway in the same test run) must
        # read the new endpoint: forget cached settings and the container runtime.
        from collab import config, runtime

        config.reset_settings()
        runtime.install(None)

    async def stop(self) -> None:
        """Close every connection with 1001 (each gets its $disconnect), then stop serving."""
        if self._sweeper_task is not None:
            self._sweeper_task.cancel()
        conns = list(self._conns.values())
        await asyncio.gather(
            *(self._close(c, WSCloseCode.GOING_AWAY, "Going away") for c in conns), return_exceptions=True
        )
        if conns:
            await asyncio.wait([asyncio.ensure_future(c.done.wait()) for c in conns], timeout=10)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=10)
        if self._server is not None:
            self._server.close()  # no new connections; the open ones close below
        for lean in list(self._lean):
            lean.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._server is not None:
            await self._server.wait_closed()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        if self.processes is not None:
            await self.processes.shutdown()

    def connections(self) -> list[ConnectionView]:
        return [
            ConnectionView(
                c.peer.connection_id,
                c.open,
                c.peer.source_ip,
                c.peer.user_agent,
                c.peer.connected_at_ms,
                c.last_active_ms,
            )
            for c in self._conns.values()
        ]

    # -- invoking functions ----------------------------------------------------------------------
    async def invoke(self, handler: Handler, event: dict[str, Any]) -> Any:
        """Run a handler with a fresh Lambda context, never on the loop: a project function in a
        worker process when the gateway has them, anything else in the thread pool."""
        assert self._pool is not None, "the gateway is not started"
        if (
            self.processes is not None
            and isinstance(handler, LambdaFunction)
            and handler.root == self.processes.root
        ):
            return await self.processes.invoke(handler.name, event)
        ctx = LambdaContext(function_name(handler))
        # Each project function signs its Management API calls as itself (its role, locally), so
        # that _manage can refuse what its role would not allow in AWS.
        function = getattr(handler, "name", None)
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, permissions.call_as, function, handler, event, ctx
        )

    async def invoke_function(self, name: str, event: dict[str, Any]) -> Any:
        """Invoke the project function ``functions/<name>/handler.py`` (as Lambda's Invoke API does,
        synchronously) and return its result: the routes' own function object when one serves
        ``name``, so it runs where they run (a worker process or the thread pool)."""
        served = (*self.routes.values(), self.http_api, self.sweeper)
        handler: Handler | None = next(
            (h for h in served if isinstance(h, LambdaFunction) and h.name == name), None
        )
        if handler is None:
            # the Invoke API's own, or one made here before
            handler = self.functions.get(name) or self._functions.get(name)
        if handler is None:
            handler = self._functions[name] = LambdaFunction(name)
        return await self.invoke(handler, event)

    async def run_function(self, name: str, event: dict[str, Any]) -> Any:
        """Run the named function (``functions/<name>``) with ``event``: the one place the Invoke
        API runs a function, however the gateway runs invocations."""
        return await self.invoke_function(name, event)

    async def _run_in_background(self, name: str, event: dict[str, Any]) -> None:
        try:
            await self.run_function(name, event)
        except Exception:  # Lambda logs it (and retries twice); the caller has its 202 already
            log.exception("asynchronous invocation of %s failed", name)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _sweep_forever(self, interval: float) -> None:
        assert self.sweeper is not None
        while True:
            await asyncio.sleep(interval)
            try:
                await self.invoke(self.sweeper, lambda_events.scheduled())
            except Exception:
                log.exception("sweeper failed")

    # -- WebSocket API -----------------------------------------------------------------------------
    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        conn: _Connection | None = None
        ws = _MeteredWebSocket(lambda verdict: self._too_big(conn, verdict))
        if not ws.can_prepare(request).ok:
            return web.Response(status=426, text="Upgrade Required")
        peer = Peer.new(request.remote or "127.0.0.1", request.headers.get("User-Agent", ""), request.host)
        conn = _Connection(peer)
        cid = peer.connection_id
        self._conns[cid] = conn
        try:
            status, body = await self._connect(conn, request)
            if status != 200:
                return web.Response(status=status, text=body or "")
            try:
                await ws.prepare(request)
            except (ConnectionError, RuntimeError):
                conn.closing(1006, "Connection closed abnormally")
            else:
                conn.ws = ws
                conn.open = conn.close_code is None
                conn.opened_at = asyncio.get_running_loop().time()
                conn.touch()
                watchdog = asyncio.create_task(self._watch(conn))
                try:
                    await self._read(conn, ws)
                finally:
                    watchdog.cancel()
            await self._disconnect(conn)
            return ws
        finally:
            self._conns.pop(cid, None)
            conn.open = False
            conn.done.set()

    async def _connect(self, conn: _Connection, request: web.Request) -> tuple[int, str | None]:
        handler = self.routes.get("$connect")
        if handler is None:
            return 200, None  # no $connect integration: API Gateway accepts every connection
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers]
        event = lambda_events.websocket_connect(conn.peer, headers, request.query.items())
        try:
            result = await self.invoke(handler, event)
        except Exception:
            # The event holds the ticket; log the failure, never the event.
            log.exception("$connect failed")
            return 500, json.dumps({"message": "Internal server error"})
        if not isinstance(result, dict):
            return 500, json.dumps({"message": "Internal server error"})
        body = result.get("body")
        return int(result.get("statusCode", 500)), None if body is None else str(body)

    async def _read(self, conn: _Connection, ws: web.WebSocketResponse) -> None:
        while True:
            msg = await ws.receive()
            if msg.type is WSMsgType.TEXT:
                conn.touch()
                self._spawn(self._message(conn, msg.data, is_base64=False))
            elif msg.type is WSMsgType.BINARY:
                conn.touch()
                self._spawn(self._message(conn, base64.b64encode(msg.data).decode(), is_base64=True))
            elif msg.type is WSMsgType.CLOSE:
                code = int(msg.data or 0)
                if code in (0, 1005):
                    conn.closing(1005, "Client-side close frame status not set")
                else:
                    conn.closing(code, str(msg.extra or ""))
                return
            elif msg.type is WSMsgType.ERROR:
                exc = msg.data
                if isinstance(exc, WebSocketError) and exc.code == WSCloseCode.MESSAGE_TOO_BIG:
                    conn.closing(1009, "Message too big")
                else:
                    conn.closing(1002, "Protocol error")
                return
            else:  # CLOSING / CLOSED: a close we began, or the TCP connection dropped
                conn.closing(1006, "Connection closed abnormally")
                return

    def _too_big(self, conn: _Connection | None, verdict: Any) -> None:
        if conn is not None:
            conn.closing(1009, "Message too big")
            cid = conn.peer.connection_id
            log.info("closing %s: a %s of %d bytes is too big", cid, verdict.rule, verdict.size)

    async def _message(self, conn: _Connection, body: str, *, is_base64: bool) -> None:
        route = "$default" if is_base64 else lambda_events.select_route(body, self.routes)
        handler = self.routes.get(route)
        if handler is None:
            return
        event = lambda_events.websocket_message(conn.peer, route, body, is_base64=is_base64)
        try:
            result = await self.invoke(handler, event)
        except Exception:
            log.exception("%s failed", route)
            # What API Gateway sends when the integration fails.
            reply: str | None = json.dumps(
                {
                    "message": "Internal server error",
                    "connectionId": conn.peer.connection_id,
                    "requestId": event["requestContext"]["requestId"],
                }
            )
        else:
            # Every message route here is two-way: a returned body is the route response.
            reply = result.get("body") if isinstance(result, dict) else None
        if reply is not None:
            text = str(reply)
            if (
                len(text) * 4 > MAX_MESSAGE_BYTES
                and len(text.encode("utf-8", "surrogatepass")) > MAX_MESSAGE_BYTES
            ):
                # Over the 128 KB message quota: API Gateway does not deliver such a route response.
                log.error(
                    "%s: route response of %d bytes not delivered (over 128 KB)", route, len(text.encode())
                )
                self.oversized.append(len(text.encode("utf-8", "surrogatepass")))
                return
            await self._send(conn, text)

    async def _send(self, conn: _Connection, text: str | bytes) -> bool:
        ws = conn.ws
        if not conn.open or ws is None:
            return False
        try:
            if isinstance(text, str):
                await ws.send_str(text)
            else:
                await ws.send_bytes(text)
        except (ConnectionError, RuntimeError):
            return False
        conn.touch()
        return True

    async def _watch(self, conn: _Connection) -> None:
        """Idle timeout and maximum duration, measured on the loop's clock."""
        loop = asyncio.get_running_loop()
        while conn.open:
            now = loop.time()
            deadline = min(conn.last_active + self.idle_timeout_s, conn.opened_at + self.max_connection_s)
            if now >= deadline:
                await self._close(conn, WSCloseCode.GOING_AWAY, "Going away")
                return
            await asyncio.sleep(deadline - now)

    async def _close(self, conn: _Connection, code: int, reason: str) -> bool:
        if conn.ws is None or not conn.open or not conn.closing(code, reason):
            return False
        try:
            await conn.ws.close(code=code, message=reason.encode())
        except (ConnectionError, RuntimeError):
            pass
        return True

    async def _disconnect(self, conn: _Connection) -> None:
        """``$disconnect``, exactly once per accepted connection; its result is ignored."""
        if conn.disconnected:
            return
        conn.disconnected = True
        handler = self.routes.get("$disconnect")
        if handler is None:
            return
        code = conn.close_code if conn.close_code is not None else 1006
        event = lambda_events.websocket_disconnect(conn.peer, code, conn.close_reason)
        try:
            await self.invoke(handler, event)
        except Exception:
            log.exception("$disconnect failed")

    # -- Management API --------------------------------------------------------------------------
    async def _manage(self, method: str, connection_id: str, authorization: str, body: bytes | None) -> Reply:
        """The Management API, for both of its servers: ``management_server`` and the aiohttp route below.
        ``body`` is None when it was over POST_MAX_BYTES and not read."""
        if not authorization.startswith("AWS4-HMAC-SHA256 "):
            return _MISSING_TOKEN
        refusal = permissions.denied(authorization, method, connection_id)
        if refusal is not None:  # the calling function's role has no execute-api:ManageConnections
            log.warning("Management API %s refused: %s", method, refusal)
            self.denied.append(refusal)
            return _json(403, {"Message": refusal}, "AccessDeniedException")
        conn = self._conns.get(connection_id)
        if conn is None or not conn.open:
            return _GONE
        if method == "GET":
            return _json(200, self._describe(conn))
        if method == "DELETE":
            # Answer at once; the close handshake finishes in the background.
            self._spawn(self._close(conn, WSCloseCode.OK, "Connection closed by the server"))
            return _DELETED
        if body is None or len(body) > POST_MAX_BYTES:
            return _TOO_LARGE
        try:
            payload: str | bytes = body.decode("utf-8")
        except UnicodeDecodeError:
            payload = body
        if not await self._send(conn, payload):
            return _GONE
        return _POSTED

    async def _management(self, request: web.Request) -> web.StreamResponse:
        """The Management API on a connection aiohttp serves (one that began with another request)."""
        too_big = request.content_length is not None and request.content_length > POST_MAX_BYTES
        body = None if too_big or request.method != "POST" else await request.read()
        authorization = request.headers.get("Authorization", "")
        status, headers, payload = await self._manage(
            request.method, request.match_info["connection_id"], authorization, body
        )
        return web.Response(status=status, headers=headers, body=payload or None)

    @staticmethod
    def _describe(conn: _Connection) -> dict[str, Any]:
        """GetConnection. The wire names are lowerCamel (what API Gateway sends and boto3 parses);
        the PascalCase twins are the names boto3 returns them under, for readers of raw JSON."""
        connected = lambda_events.iso(conn.peer.connected_at_ms)
        active = lambda_events.iso(conn.last_active_ms)
        ip, ua = conn.peer.source_ip, conn.peer.user_agent
        return {
            "connectedAt": connected,
            "identity": {"sourceIp": ip, "userAgent": ua},
            "lastActiveAt": active,
            "ConnectedAt": connected,
            "Identity": {"SourceIp": ip, "UserAgent": ua},
            "LastActiveAt": active,
        }

    # -- HTTP API and static files ---------------------------------------------------------------
    async def _http(self, request: web.Request) -> web.StreamResponse:
        if self.http_api is None:
            return web.json_response({"message": "Not Found"}, status=404)
        raw_path, _, raw_query = request.raw_path.partition("?")
        path = raw_path.removeprefix("/api") or "/"
        event = lambda_events.http_api(
            method=request.method,
            path=path,
            raw_query=raw_query,
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers],
            body=await request.read(),
            source_ip=request.remote or "127.0.0.1",
            domain_name=request.host,
            protocol=f"HTTP/{request.version.major}.{request.version.minor}",
        )
        try:
            result = lambda_events.http_api_result(await self.invoke(self.http_api, event))
        except Exception:
            log.exception("HTTP API handler failed on %s %s", request.method, path)
            return web.json_response({"message": "Internal Server Error"}, status=500)
        response = web.Response(status=result.status, body=result.body)
        for name, value in result.headers:
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                response.headers.add(name, value)
        return response

    # -- Lambda's Invoke API ---------------------------------------------------------------------
    async def _lambda_invoke(self, request: web.Request) -> web.StreamResponse:
        """``Invoke``: by function name or ARN, ``collab-<name>`` for the project's functions."""
        authorization = request.headers.get("Authorization", "")
        if not authorization.startswith("AWS4-HMAC-SHA256 "):
            return _response(_MISSING_TOKEN)
        name = request.match_info["name"].rsplit(":function:", 1)[-1].split(":", 1)[0].removeprefix("collab-")
        if name not in self.functions:
            message = f"Function not found: {request.match_info['name']}"
            return _response(_invoke_error(404, message, "ResourceNotFoundException"))
        refusal = permissions.invoke_denied(authorization, name)
        if refusal is not None:
            log.warning("Invoke refused: %s", refusal)
            self.denied.append(refusal)
            return _response(_invoke_error(403, refusal, "AccessDeniedException"))
        kind = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        limit = INVOKE_ASYNC_MAX_BYTES if kind == "Event" else INVOKE_SYNC_MAX_BYTES
        body = await request.read()
        if len(body) > limit:
            message = f"Request must be smaller than {limit} bytes for the Invoke operation"
            return _response(_invoke_error(413, message, "RequestEntityTooLargeException"))
        try:
            event = json.loads(body or b"{}")
        except ValueError:
            message = "Could not parse request body into json"
            return _response(_invoke_error(400, message, "InvalidRequestContentException"))
        if kind == "Event":
            self.invocations[name] = self.invocations.get(name, 0) + 1
            self._spawn(self._run_in_background(name, event))
            return web.Response(status=202)
        try:
            result = await self.run_function(name, event)
        except Exception as exc:  # Lambda answers 200 with the error as the payload
            log.exception("invocation of %s failed", name)
            error = {"errorMessage": str(exc), "errorType": type(exc).__name__}
            return web.json_response(error, headers={"X-Amz-Function-Error": "Unhandled"})
        return web.json_response(result)

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(self.web_dir / "index.html")

    @staticmethod
    async def _no_cache(request: web.Request, response: web.StreamResponse) -> None:
        # The demo page is edited while `collab dev` runs: always revalidate.
        if not request.path.startswith(("/api", "/@connections", "/ws")):
            response.headers["Cache-Control"] = "no-cache"
