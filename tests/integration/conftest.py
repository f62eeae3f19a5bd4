"""WebSocket test harness: real handlers over real Postgres/Redis, moto for the Management API.

moto's Management API backend concatenates posted payloads and never answers 410, so its methods
are patched: every post is captured separately, and a connection can be made gone (410) or the
API made to throttle (429) for a number of calls. Each handler is invoked as its own function
(``collab_dev.permissions.call_as``): it signs with its own access key, and the server answers 403,
as API Gateway would, to a function whose role may not call the Management API.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

# moto's server at import, not in the session fixture: mutation testing forks a test session per
# mutant from a process that has collected the tests (imported this module), so each session then
# starts the server without paying moto's imports (~0.4 s) again
from moto.apigatewaymanagementapi.models import ApiGatewayManagementApiBackend
from moto.core.exceptions import JsonRESTError
from moto.server import ThreadedMotoServer

from collab_dev.permissions import call_as, denied

EVENTS = Path(__file__).parent.parent / "events"


class Sink:
    """What the Management API received."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.deleted: list[str] = []
        self.gone: set[str] = set()
        self.throttle = 0  # answer 429 to this many next posts
        self.attempts: list[str] = []
        self.denied: list[str] = []  # calls refused: the calling function may not post
        self.largest = 0  # bytes of the largest message posted

    def frames(self, cid: str, type_: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [f for c, f in self.posts if c == cid and (type_ is None or f["type"] == type_)]

    def all(self, type_: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        with self.lock:
            return [(c, f) for c, f in self.posts if type_ is None or f["type"] == type_]


SINK = Sink()


@contextmanager
def moto_management_api(sink: Sink) -> Iterator[str]:
    """moto's Management API in server mode, patched to capture each post into ``sink``, answer 410
    for its gone connections and 429 while it throttles. Yields the endpoint URL."""

    class Gone(JsonRESTError):
        code = 410

        def __init__(self) -> None:
            super().__init__("GoneException", "the connection is gone")

    class Throttled(JsonRESTError):
        code = 429

        def __init__(self) -> None:
            super().__init__("LimitExceededException", "throttled")

    def post(self: Any, data: bytes, connection_id: str) -> None:
        cid = unquote(connection_id)
        with sink.lock:
            sink.attempts.append(cid)
            if sink.throttle > 0:
                sink.throttle -= 1
                raise Throttled()
            if cid in sink.gone:
                raise Gone()
            sink.posts.append((cid, json.loads(data)))
            sink.largest = max(sink.largest, len(data))

    def delete(self: Any, connection_id: str) -> None:
        cid = unquote(connection_id)
        with sink.lock:
            sink.deleted.append(cid)
            if cid in sink.gone:
                raise Gone()
            sink.gone.add(cid)

    mp = pytest.MonkeyPatch()
    mp.setattr(ApiGatewayManagementApiBackend, "post_to_connection", post)
    mp.setattr(ApiGatewayManagementApiBackend, "delete_connection", delete)
    mp.setenv("AWS_ACCESS_KEY_ID", "testing")
    mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)  # loopback only
    server.start()
    assert server._server is not None
    server._server.app = _enforcing(server._server.app, sink)
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        mp.undo()


def _enforcing(app: Any, sink: Sink) -> Any:
    """WSGI middleware: 403 AccessDeniedException for a function whose role may not post."""

    def middleware(environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if "/@connections/" in path:
            cid = unquote(path.rsplit("/", 1)[-1])
            refusal = denied(environ.get("HTTP_AUTHORIZATION", ""), environ["REQUEST_METHOD"], cid)
            if refusal is not None:
                with sink.lock:
                    sink.denied.append(refusal)
                body = json.dumps({"Message": refusal}).encode()
                start_response(
                    "403 Forbidden",
                    [
                        ("Content-Type", "application/json"),
                        ("x-amzn-ErrorType", "AccessDeniedException"),
                        ("Content-Length", str(len(body))),
                    ],
                )
                return [body]
        return app(environ, start_response)

    return middleware


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with moto_management_api(SINK) as endpoint:
        yield endpoint


@pytest.fixture
def sink(moto_endpoint: str) -> Sink:
    SINK.reset()
    return SINK


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{name}.json").read_text())


class Conn:
    def __init__(self, world: World, cid: str, user: str, wid: str) -> None:
        self.world, self.cid, self.user, self.wid = world, cid, user, wid

    def event(self, name: str, body: str | None = None) -> dict[str, Any]:
        ev = load_event(name)
        ev["requestContext"]["connectionId"] = self.cid
        if body is not None:
            ev["body"] = body
        return ev

    def send_raw(self, body: str) -> dict[str, Any] | None:
        from functions.message.handler import handler

        out = call_as("message", handler, self.event("message", body), self.world.context)
        assert out["statusCode"] == 200
        return json.loads(out["body"]) if "body" in out else None

    def send(self, frame: dict[str, Any]) -> dict[str, Any] | None:
        return self.send_raw(json.dumps(frame))

    def heartbeat(self) -> dict[str, Any]:
        from functions.heartbeat.handler import handler

        out = call_as("heartbeat", handler, self.event("heartbeat"), self.world.context)
        return json.loads(out["body"])

    def beat(self, **fields: Any) -> dict[str, Any] | None:
        """A v1.2 heartbeat (``seq``, ``mode``, ``probe``): its answer, or None when it got none."""
        from functions.heartbeat.handler import handler

        out = handler(
            self.event("heartbeat", json.dumps({"action": "heartbeat", **fields})), self.world.context
        )
        assert out["statusCode"] == 200
        return json.loads(out["body"]) if "body" in out else None

    def disconnect(self) -> None:
        from functions.disconnect.handler import handler

        call_as("disconnect", handler, self.event("disconnect"), self.world.context)

    def received(self, type_: str | None = None) -> list[dict[str, Any]]:
        return self.world.sink.frames(self.cid, type_)

    def create(self, title: str = "task", **fields: Any) -> dict[str, Any]:
        reply = self.send(
            {"action": "task.create", "request_id": str(uuid.uuid4()), "task": {"title": title, **fields}}
        )
        assert reply is not None
        return reply

    def editing(self, task_id: str | None, field: str = "title") -> None:
        """v1.3 ``presence.update`` viewing ``task_id`` and editing its ``field`` (None: blur)."""
        target = None if task_id is None else {"task_id": task_id, "field": field}
        frame = {"action": "presence.update", "status": "active", "viewing": task_id, "editing": target}
        assert self.send(frame) is None

    def update(self, task_id: str, *, seen_version: int | None = None, **changes: Any) -> dict[str, Any]:
        frame = {
            "action": "task.update",
            "request_id": str(uuid.uuid4()),
            "task_id": task_id,
            "changes": changes,
        }
        if seen_version is not None:
            frame["seen_version"] = seen_version
        reply = self.send(frame)
        assert reply is not None
        return reply


class FakeContext:
    function_name = "collab-test"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:collab-test"
    aws_request_id = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


class World:
    """Users, workspaces and connections, set up through SQL and the real handlers."""

    def __init__(self, rt: Any, sink: Sink) -> None:
        self.rt, self.sink, self.context = rt, sink, FakeContext()

    def user(self, uid: str, name: str | None = None) -> str:
        self.rt.db.run(
            lambda cur: cur.execute(
                "INSERT INTO users (id, display_name, email) VALUES (%s, %s, %s) ON CONFLICT (id) DO NOTHING",
                (uid, name or uid.title(), f"{uid}@example.com"),
            )
        )
        return uid

    def workspace(self, owner: str, *members: str, name: str = "Board") -> str:
        for u in (owner, *members):
            self.user(u)

        def tx(cur: Any) -> str:
            wid = str(
                cur.execute(
                    "INSERT INTO workspaces (name, created_by) VALUES (%s, %s) RETURNING id", (name, owner)
                ).fetchone()["id"]
            )
            cur.execute(
                "INSERT INTO workspace_members (workspace_id, user_id, role) VALUES (%s, %s, 'owner')",
                (wid, owner),
            )
            for m in members:
                cur.execute(
                    "INSERT INTO workspace_members (workspace_id, user_id, role) VALUES (%s, %s, 'member')",
                    (wid, m),
                )
            return wid

        return self.rt.db.run(tx)

    def remove_member(self, wid: str, uid: str) -> None:
        self.rt.db.run(
            lambda cur: cur.execute(
                "DELETE FROM workspace_members WHERE workspace_id = %s AND user_id = %s", (wid, uid)
            )
        )

    def ticket(self, uid: str, wid: str) -> str:
        from collab.auth.tokens import issue_ticket

        return issue_ticket(self.rt.settings, uid, wid)[0]

    def connect_event(self, token: str | None, cid: str | None = None) -> dict[str, Any]:
        ev = load_event("connect")
        ev["requestContext"]["connectionId"] = cid or f"{uuid.uuid4().hex[:15]}="
        if token is None:
            ev.pop("queryStringParameters")
            ev.pop("multiValueQueryStringParameters")
        else:
            ev["queryStringParameters"] = {"token": token}
            ev["multiValueQueryStringParameters"] = {"token": [token]}
        return ev

    def connect_raw(self, token: str | None, cid: str | None = None) -> dict[str, Any]:
        from functions.connect.handler import handler

        return call_as("connect", handler, self.connect_event(token, cid), self.context)

    def connect(self, uid: str, wid: str, *, sync: bool = True) -> Conn:
        cid = f"{uuid.uuid4().hex[:15]}="
        out = self.connect_raw(self.ticket(uid, wid), cid)
        assert out["statusCode"] == 200, out
        conn = Conn(self, cid, uid, wid)
        if sync:
            reply = conn.send({"action": "sync", "since": None})
            assert reply is not None and reply["type"] == "sync"
        return conn

    def attach(self, cid: str, uid: str, wid: str) -> Conn:
        """The connection ``cid`` that :meth:`connect_raw` opened, to send its frames."""
        return Conn(self, cid, uid, wid)

    def sweep(self) -> dict[str, Any]:
        from functions.sweeper.handler import handler

        return call_as("sweeper", handler, copy.deepcopy(load_event("scheduled")), self.context)


@pytest.fixture
def world(settings: Any, clean: None, clock: Any, sink: Sink, moto_endpoint: str) -> Any:
    from collab import runtime

    rt = runtime.Runtime(settings.model_copy(update={"connections_endpoint": moto_endpoint}), clock=clock)
    runtime.install(rt)
    yield World(rt, sink)
    runtime.install(None)
    # Under enforcement: a path that posts from a function whose role may not fails its test.
    assert not sink.denied, f"Management API calls a function's role does not allow: {sink.denied}"
    if "db" in rt.__dict__:
        rt.db.close()


@pytest.fixture
def held(settings: Any) -> Iterator[Any]:
    """A database whose next transaction stops just before COMMIT until ``held.release`` is set
    (``test_interleavings.HeldDatabase``): the races of the integration tests, made deterministic."""
    from test_interleavings import HeldDatabase

    h = HeldDatabase(settings.dsn)
    yield h
    h.release.set()
    h.close()


# -- the HTTP API tests' shared fixtures -------------------------------------------------------
@pytest.fixture
def api(rt: Any, settings: Any) -> Any:
    """Calls functions/api/handler.py with payload-2.0 events and tokens of the test's users."""
    from test_http_helpers import Api

    return Api(settings)


@pytest.fixture
def wid(api: Any) -> str:
    """A workspace owned by alice with bob as a member; dave exists but is not a member."""
    wid = api.workspace("alice")
    api.add("alice", wid, "bob")
    api.ok("GET", "/workspaces", "dave")
    return str(wid)
