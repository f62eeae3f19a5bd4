"""Small WebSocket handlers for the gateway's own tests, independent of the project's functions.

They answer the way the real handlers do (``{"statusCode", "body"?}``) and record every event they
get, so a test can look at what API Gateway would have sent.

``$connect`` decides on the ``token`` query parameter: ``ok`` 200, ``forbidden`` 403, anything else
401; ``post-self`` first tries to post to its own connection (which must fail: nothing can be sent
during ``$connect``). ``$default`` answers every frame with the route it took and its connection id.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from collab.adapters.apigw.management import ManagementApi

_lock = threading.Lock()
EVENTS: list[dict[str, Any]] = []
POSTS_DURING_CONNECT: list[str] = []


def reset() -> None:
    with _lock:
        EVENTS.clear()
        POSTS_DURING_CONNECT.clear()


def _record(event: dict[str, Any]) -> None:
    with _lock:
        EVENTS.append(event)


def recorded(route: str) -> list[dict[str, Any]]:
    with _lock:
        return [e for e in EVENTS if e["requestContext"]["routeKey"] == route]


def connect(event: dict[str, Any], context: Any) -> dict[str, Any]:
    _record(event)
    token = (event.get("queryStringParameters") or {}).get("token")
    if token == "post-self":
        api = ManagementApi(os.environ["CONNECTIONS_ENDPOINT"])
        cid = event["requestContext"]["connectionId"]
        with _lock:
            POSTS_DURING_CONNECT.append(api.post(cid, b'{"too":"early"}'))
        return {"statusCode": 200}
    if token == "ok":
        return {"statusCode": 200}
    if token == "forbidden":
        return {"statusCode": 403, "body": json.dumps({"error": {"code": "forbidden"}})}
    return {"statusCode": 401, "body": json.dumps({"error": {"code": "unauthorized"}})}


def disconnect(event: dict[str, Any], context: Any) -> dict[str, Any]:
    _record(event)
    return {"statusCode": 200}


def heartbeat(event: dict[str, Any], context: Any) -> dict[str, Any]:
    _record(event)
    if '"seq"' in (event.get("body") or ""):  # a quiet (v1.2) heartbeat: no body, nothing is sent
        return {"statusCode": 200}
    return {"statusCode": 200, "body": json.dumps({"type": "heartbeat.ack", "data": {}})}


def default(event: dict[str, Any], context: Any) -> dict[str, Any]:
    _record(event)
    ctx = event["requestContext"]
    if event["body"] == "no-reply":
        return {"statusCode": 200}
    if event["body"].startswith("reply-bytes:"):  # a route response of exactly this many UTF-8 bytes
        n = int(event["body"].split(":", 1)[1])
        return {"statusCode": 200, "body": "\U0001f600" * (n // 4) + "y" * (n % 4)}
    reply: dict[str, Any] = {"route": ctx["routeKey"], "connection_id": ctx["connectionId"]}
    if len(event["body"]) > 64 * 1024:  # echoed whole, the reply would be over 128 KB: not delivered
        reply["echo_length"] = len(event["body"])
    else:
        reply["echo"] = event["body"]
    return {"statusCode": 200, "body": json.dumps(reply)}


ROUTES = {"$connect": connect, "$disconnect": disconnect, "heartbeat": heartbeat, "$default": default}
