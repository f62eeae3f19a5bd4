"""What every WebSocket route shares: the event's connection and endpoint, the connection's
identity, and the route response that API Gateway sends back to the sender.

Replies travel as the Lambda's return value on the two-way routes (``heartbeat`` and ``$default``),
so answering the sender costs no Management API call; only peers are reached through
``post_to_connection``. The walkthrough of a frame is in docs/architecture.md.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from collab.clock import iso
from collab.errors import CollabError, Unauthorized
from collab.observability import logger
from collab.protocol.wire import MESSAGE_LIMIT, dumps, frame

if TYPE_CHECKING:
    from collab.adapters.apigw.management import ManagementApi
    from collab.adapters.redis.store import ConnInfo
    from collab.protocol.client_frames import BadFrame
    from collab.runtime import Runtime

WINDOW_MS = 60_000  # the rate limits' sliding window (frames and connection attempts per minute)


def connection_id(event: dict[str, Any]) -> str:
    return str((event.get("requestContext") or {}).get("connectionId", ""))


def endpoint(event: dict[str, Any]) -> str | None:
    """The Management API endpoint of the stage the event came through."""
    ctx = event.get("requestContext") or {}
    domain, stage = ctx.get("domainName"), ctx.get("stage")
    return f"https://{domain}/{stage}" if domain and stage else None


def reply(rt: Runtime, type_: str, data: dict[str, Any], info: ConnInfo | None = None) -> dict[str, Any]:
    out = frame(
        type_,
        info.workspace_id if info else None,
        info.user_id if info else None,
        iso(rt.clock.utcnow()),
        data,
    )
    body = dumps(out)
    if not body.isascii():
        try:
            body.encode()
        except UnicodeEncodeError:  # a lone surrogate echoed from the frame ("\ud800" in a request_id)
            body = json.dumps(out, separators=(",", ":"))  # as \u escapes: a valid UTF-8 text frame
    if len(body) * 4 > MESSAGE_LIMIT and len(body.encode()) > MESSAGE_LIMIT:
        # API Gateway would not deliver it (128 KB); every reply is budgeted below that, so this
        # is a bug, answered as one rather than left unanswered.
        logger.error("reply over API Gateway's 128 KB", extra={"type": type_, "bytes": len(body.encode())})
        return error(rt, CollabError("the reply would exceed 128 KB"), info)
    return {"statusCode": 200, "body": body}


def error(rt: Runtime, exc: CollabError | BadFrame, info: ConnInfo | None = None) -> dict[str, Any]:
    data = exc.to_wire() if isinstance(exc, CollabError) else {"code": exc.code, "message": exc.message}
    return reply(rt, "error", data, info)


def ack(rt: Runtime, info: ConnInfo, data: dict[str, Any]) -> dict[str, Any]:
    return reply(rt, "ack", data, info)


def ack_error(request_id: str | None, exc: CollabError) -> dict[str, Any]:
    return {"request_id": request_id, "ok": False, "error": exc.to_wire()}


def connection_info(rt: Runtime, cid: str) -> ConnInfo | None:
    """The connection's identity: from the container's cache, or from Redis once."""
    info = rt.connections.get(cid)
    if info is None:
        info = rt.store.connection(cid)
        if info is not None:
            rt.remember(info)
    return info


def gone(rt: Runtime, gateway: ManagementApi, cid: str) -> dict[str, Any]:
    """A frame from a connection we no longer know (swept, or its state was lost): tell the client
    to reconnect, and close it."""
    rt.connections.pop(cid, None)
    gateway.delete(cid)
    return error(rt, Unauthorized("connection is not registered; reconnect"))
