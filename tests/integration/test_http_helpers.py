"""Helpers for the HTTP API tests: payload-2.0 events, a Lambda context, a small client.

Events are shaped as API Gateway HTTP API sends them (payload format 2.0, ``$default`` stage);
every call goes through ``functions/api/handler.py``, the deployed entry point.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from collab.auth.tokens import issue_access_token
from collab_dev.permissions import call_as

ABSENT = object()
ROOT = Path(__file__).resolve().parents[2]


def load_handler(function: str) -> Any:
    """Import ``functions/<function>/handler.py`` by path, as Lambda does (its folder is the code root)."""
    spec = importlib.util.spec_from_file_location(
        f"collab_fn_{function}", ROOT / "functions" / function / "handler.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


handler = load_handler("api").handler


@dataclass
class LambdaContext:
    function_name: str = "collab-api"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:collab-api"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/collab-api"
    log_stream_name: str = "test"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def http_event(
    method: str,
    path: str,
    *,
    token: str | None = None,
    body: Any = ABSENT,
    raw_body: str | None = None,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    base64_body: bool = False,
) -> dict[str, Any]:
    """An API Gateway HTTP API payload-2.0 event (``rawPath`` percent-encoded, like API Gateway's)."""
    hdrs = {"host": "api.example.test", "user-agent": "pytest", "accept": "application/json"}
    if token is not None:
        hdrs["authorization"] = f"Bearer {token}"
    text = raw_body
    if body is not ABSENT:
        text = json.dumps(body)
    if text is not None:
        hdrs["content-type"] = "application/json"
        hdrs["content-length"] = str(len(text.encode()))
    hdrs.update({k.lower(): v for k, v in (headers or {}).items()})
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": urlencode(query or {}),
        "headers": hdrs,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "api.example.test",
            "domainPrefix": "api",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "pytest",
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if query:
        event["queryStringParameters"] = dict(query)
    if text is not None:
        if base64_body:
            event["body"] = base64.b64encode(text.encode()).decode()
            event["isBase64Encoded"] = True
        else:
            event["body"] = text
    return event


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]

    @property
    def error(self) -> dict[str, Any]:
        assert isinstance(self.body, dict) and "error" in self.body, self.body
        return dict(self.body["error"])


def invoke(event: dict[str, Any]) -> Answer:
    out = call_as("api", handler, event, LambdaContext())
    raw = out.get("body")
    body = json.loads(raw) if raw else None
    return Answer(int(out["statusCode"]), body, {k.lower(): v for k, v in (out.get("headers") or {}).items()})


class Api:
    """Calls the handler as given users (each has a token with ``sub``/``email``/``name``)."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings

    def token(self, user: str) -> str:
        return issue_access_token(self.settings, user, email=f"{user}@example.test", name=user.title())

    def call(
        self,
        method: str,
        path: str,
        user: str | None,
        body: Any = ABSENT,
        query: dict[str, Any] | None = None,
        **kw: Any,
    ) -> Answer:
        q = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in (query or {}).items()}
        token = self.token(user) if user else None
        return invoke(http_event(method, path, token=token, body=body, query=q or None, **kw))

    def ok(self, method: str, path: str, user: str, body: Any = ABSENT, **kw: Any) -> Any:
        a = self.call(method, path, user, body, **kw)
        assert a.status < 300, (a.status, a.body)
        return a.body

    def workspace(self, owner: str, name: str = "Board") -> str:
        return str(self.ok("POST", "/workspaces", owner, {"name": name})["id"])

    def add(self, actor: str, wid: str, user: str, role: str = "member") -> dict[str, Any]:
        self.ok("GET", "/workspaces", user)  # first sight: the user row exists from now on
        return dict(self.ok("POST", f"/workspaces/{wid}/members", actor, {"user_id": user, "role": role}))


@contextmanager
def installed_runtime(settings: Any) -> Iterator[Any]:
    """A runtime over the real services *without* emptying them first (no ``clean``): for tests whose
    data never collides (fresh workspace ids, users inserted idempotently), which skip a TRUNCATE."""
    from collab import runtime

    rt = runtime.Runtime(settings)
    runtime.install(rt)
    try:
        yield rt
    finally:
        runtime.install(None)
        if "db" in rt.__dict__:
            rt.db.close()


def member_path(wid: str, user: str) -> str:
    return f"/workspaces/{wid}/members/{quote(user, safe='')}"
