"""Server frames as plain dicts and their JSON text: the part of the protocol every route needs,
kept free of pydantic so that ``$connect`` and ``heartbeat`` do not pay for the models at cold start."""

from __future__ import annotations

import json
from typing import Any

# API Gateway's WebSocket quota (not adjustable): a message, whether a route response or a
# PostToConnection, is at most 128 KB. API Gateway does not deliver a larger route response, and
# refuses a larger post with 413. Every frame the server sends is measured in UTF-8 bytes against it.
MESSAGE_LIMIT = 128 * 1024


def frame(
    type_: str,
    workspace_id: str | None,
    user_id: str | None,
    timestamp: str,
    data: dict[str, Any],
    seq: int | None = None,
) -> dict[str, Any]:
    """``{"type", "workspace_id", "user_id" (the actor), "timestamp", "data"}``, plus ``seq`` for
    workspace events (contract 3.3)."""
    out: dict[str, Any] = {
        "type": type_,
        "workspace_id": workspace_id,
        "user_id": user_id,
        "timestamp": timestamp,
        "data": data,
    }
    if seq is not None:
        out["seq"] = seq
    return out


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def size(obj: Any) -> int:
    """The UTF-8 size of ``obj``'s JSON text as sent (an emoji is 4 bytes, not 1 character)."""
    return len(dumps(obj).encode("utf-8", "surrogatepass"))
