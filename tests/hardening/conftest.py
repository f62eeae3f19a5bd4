"""Hardening harness: the WebSocket ``world`` of tests/integration, available to these suites too.

The world (real handlers over real Postgres/Redis, moto's Management API patched to capture posts)
is defined in tests/integration/conftest.py, whose fixtures pytest only offers below that folder.
Its module is reused here: the one pytest loaded when tests/integration is collected in the same
session (so both folders capture posts into one ``Sink``, whichever patch of moto came last), or
else a copy imported by path.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import unquote

import pytest

INTEGRATION_CONFTEST = (Path(__file__).resolve().parents[1] / "integration" / "conftest.py").resolve()
_COPY = "collab_hardening_integration_harness"


def integration_harness(config: pytest.Config) -> ModuleType:
    """tests/integration/conftest.py as a module: pytest's own when loaded, else a copy."""
    for plugin in config.pluginmanager.get_plugins():
        path = getattr(plugin, "__file__", None)
        if path and Path(path).resolve() == INTEGRATION_CONFTEST:
            return plugin  # type: ignore[no-any-return]
    module = sys.modules.get(_COPY)
    if module is None:
        spec = importlib.util.spec_from_file_location(_COPY, INTEGRATION_CONFTEST)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[_COPY] = module
        spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def harness(request: pytest.FixtureRequest) -> ModuleType:
    return integration_harness(request.config)


@pytest.fixture(scope="session")
def moto_endpoint(harness: ModuleType) -> Iterator[str]:
    """moto's Management API in server mode, patched exactly as tests/integration patches it
    (captured posts, 410 for gone connections, 429 while throttling), into the harness's Sink."""
    from moto.apigatewaymanagementapi.models import ApiGatewayManagementApiBackend
    from moto.core.exceptions import JsonRESTError
    from moto.server import ThreadedMotoServer

    sink = harness.SINK

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
    server = ThreadedMotoServer(port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
    mp.undo()


@pytest.fixture
def sink(harness: ModuleType, moto_endpoint: str) -> Any:
    harness.SINK.reset()
    return harness.SINK


@pytest.fixture
def world(harness: ModuleType, settings: Any, clean: None, clock: Any, sink: Any, moto_endpoint: str) -> Any:
    """Users, workspaces and connections over the real handlers (see tests/integration/conftest.py)."""
    from collab import runtime

    rt = runtime.Runtime(settings.model_copy(update={"connections_endpoint": moto_endpoint}), clock=clock)
    runtime.install(rt)
    w = harness.World(rt, sink)
    w.conn_class = harness.Conn  # for connections opened by hand (connect_raw)
    yield w
    runtime.install(None)
    if "db" in rt.__dict__:
        rt.db.close()
