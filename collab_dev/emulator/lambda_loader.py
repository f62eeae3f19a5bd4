"""The project's Lambda functions, as the local gateway invokes them.

Each function is ``functions/<name>/handler.py:handler``, imported on its first invocation inside a
worker thread (the local equivalent of a cold start, kept off the event loop) and then reused, as a
warm container is. A function that fails to import fails that invocation, with the import error in
the log, and is retried on the next one: the gateway keeps serving while a handler is being written.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

Handler = Callable[[dict[str, Any], Any], Any]

# WebSocket route key -> function folder (contract section 1).
WEBSOCKET_ROUTES = {
    "$connect": "connect",
    "$disconnect": "disconnect",
    "heartbeat": "heartbeat",
    "$default": "message",
}
HTTP_API = "api"
SWEEPER = "sweeper"
INVOKED = ("fanout",)  # functions other functions invoke (Lambda's Invoke API)


def project_root() -> Path:
    """The checkout holding ``functions/`` and ``web/``: the one this package sits in for a
    development install (``collab_dev/emulator/`` -> the checkout), else the current directory."""
    here = Path(__file__).resolve().parents[2]
    if (here / "functions").is_dir():
        return here
    return Path.cwd()


class LambdaFunction:
    """``functions/<name>/handler.py:handler``, loaded on first call."""

    def __init__(self, name: str, root: Path | None = None) -> None:
        self.name = name
        self.function_name = f"collab-{name}"
        self.root = root or project_root()
        self._handler: Handler | None = None
        self._lock = threading.Lock()

    def _load(self) -> Handler:
        with self._lock:
            if self._handler is None:
                if str(self.root) not in sys.path:
                    sys.path.insert(0, str(self.root))
                module = importlib.import_module(f"functions.{self.name}.handler")
                self._handler = module.handler
            return self._handler

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        return self._load()(event, context)

    def __repr__(self) -> str:
        return f"LambdaFunction({self.name!r})"


def websocket_routes(root: Path | None = None) -> dict[str, Handler]:
    return {route: LambdaFunction(name, root) for route, name in WEBSOCKET_ROUTES.items()}


def function_name(handler: Handler) -> str:
    """The name the fake Lambda context reports: ``collab-<name>`` for project functions."""
    name = getattr(handler, "function_name", None)
    if isinstance(name, str):
        return name
    return str(getattr(handler, "__name__", "local-function"))
