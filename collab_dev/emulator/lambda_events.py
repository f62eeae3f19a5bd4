"""Events shaped exactly as AWS sends them, for the real handlers run by the local gateway.

The WebSocket shapes follow captured API Gateway events (``$connect`` with headers, multi-value
headers and the query string; ``MESSAGE`` with ``messageId`` and ``body``; ``$disconnect`` with
``disconnectStatusCode`` and ``disconnectReason``); the HTTP API uses payload format 2.0; the
sweeper gets EventBridge's "Scheduled Event". Handlers must not be able to tell that they run
locally, so a handler that passes here is fed the same fields in AWS.

Pure functions of their inputs (plus ids and clocks): no sockets, no aiohttp.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

ACCOUNT_ID = "123456789012"  # the documentation account id; nothing local has a real one
API_ID = "local"
STAGE = "local"
REGION = "us-east-1"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def gateway_id() -> str:
    """An id in API Gateway's form (connection, request, message ids): 16 chars of URL-safe base64
    ending in '=' (11 random bytes), e.g. ``BFaT_fALIAMCKug=``. Handlers see exactly that shape, so
    a handler that mishandles '=', '-' or '_' in a path fails here rather than in AWS."""
    return base64.urlsafe_b64encode(secrets.token_bytes(11)).decode()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def request_time(ms: int) -> str:
    """CLF time as in ``requestTime``: ``11/Nov/2024:11:35:24 +0000`` (locale-independent)."""
    t = datetime.fromtimestamp(ms / 1000, UTC)
    return f"{t.day:02d}/{_MONTHS[t.month - 1]}/{t.year}:{t:%H:%M:%S} +0000"


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Peer:
    """What API Gateway knows about a WebSocket client: fixed at the upgrade request."""

    connection_id: str
    connected_at_ms: int
    source_ip: str
    user_agent: str
    domain_name: str

    @classmethod
    def new(cls, source_ip: str, user_agent: str, domain_name: str) -> Peer:
        return cls(gateway_id(), now_ms(), source_ip, user_agent, domain_name)


def _request_context(peer: Peer, route_key: str, event_type: str, **extra: Any) -> dict[str, Any]:
    ms = now_ms()
    rid = gateway_id()
    ctx: dict[str, Any] = {
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": rid,
        "requestTime": request_time(ms),
        "messageDirection": "IN",
        "stage": STAGE,
        "connectedAt": peer.connected_at_ms,
        "requestTimeEpoch": ms,
        "identity": {"sourceIp": peer.source_ip, "userAgent": peer.user_agent},
        "requestId": rid,
        "domainName": peer.domain_name,
        "connectionId": peer.connection_id,
        "apiId": API_ID,
    }
    ctx.update(extra)
    return ctx


def _multi(pairs: Iterable[tuple[str, str]]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Single-value map (the last value wins, as in API Gateway) and multi-value map."""
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for k, v in pairs:
        single[k] = v
        multi.setdefault(k, []).append(v)
    return single, multi


def websocket_connect(
    peer: Peer, headers: Iterable[tuple[str, str]], query: Iterable[tuple[str, str]]
) -> dict[str, Any]:
    """``$connect``: the upgrade request's headers (original case) and query string.

    API Gateway adds its forwarding headers; the query string fields appear only when there is one.
    """
    added = [
        ("X-Amzn-Trace-Id", f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)}"),
        ("X-Forwarded-For", peer.source_ip),
        ("X-Forwarded-Port", peer.domain_name.rpartition(":")[2] or "80"),
        ("X-Forwarded-Proto", "http"),
    ]
    skip = {k.lower() for k, _ in added}
    h, mh = _multi([*((k, v) for k, v in headers if k.lower() not in skip), *added])
    event: dict[str, Any] = {"headers": h, "multiValueHeaders": mh}
    q, mq = _multi(query)
    if q:
        event["queryStringParameters"] = q
        event["multiValueQueryStringParameters"] = mq
    event["requestContext"] = _request_context(peer, "$connect", "CONNECT")
    event["isBase64Encoded"] = False
    return event


def websocket_message(peer: Peer, route_key: str, body: str, *, is_base64: bool = False) -> dict[str, Any]:
    """A data frame: no headers, a ``messageId``, the frame as ``body``."""
    return {
        "requestContext": _request_context(peer, route_key, "MESSAGE", messageId=gateway_id()),
        "body": body,
        "isBase64Encoded": is_base64,
    }


def websocket_disconnect(peer: Peer, status_code: int, reason: str) -> dict[str, Any]:
    """``$disconnect``: the headers API Gateway sends (a fixed set, not the client's)."""
    host = peer.domain_name
    headers = {"Host": host, "x-api-key": "", "X-Forwarded-For": "", "x-restapi": ""}
    return {
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "requestContext": _request_context(
            peer, "$disconnect", "DISCONNECT", disconnectStatusCode=status_code, disconnectReason=reason
        ),
        "isBase64Encoded": False,
    }


def http_api(
    *,
    method: str,
    path: str,
    raw_query: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    source_ip: str,
    domain_name: str,
    protocol: str = "HTTP/1.1",
) -> dict[str, Any]:
    """HTTP API payload format 2.0, ``$default`` route and stage.

    Header names are lower-cased and repeated headers joined with commas; cookies move to
    ``cookies``; repeated query parameters are joined with commas; a body that is not UTF-8 text
    is base64-encoded.
    """
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for k, v in headers:
        name = k.lower()
        if name == "cookie":
            cookies.extend(c.strip() for c in v.split(";") if c.strip())
            continue
        joined[name] = f"{joined[name]},{v}" if name in joined else v
    qs: dict[str, str] = {}
    for k, v in parse_qsl(raw_query, keep_blank_values=True):
        qs[k] = f"{qs[k]},{v}" if k in qs else v
    ms = now_ms()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": joined,
    }
    if cookies:
        event["cookies"] = cookies
    if qs:
        event["queryStringParameters"] = qs
    event["requestContext"] = {
        "accountId": ACCOUNT_ID,
        "apiId": API_ID,
        "domainName": domain_name,
        "domainPrefix": domain_name.split(".")[0].split(":")[0],
        "http": {
            "method": method.upper(),
            "path": path,
            "protocol": protocol,
            "sourceIp": source_ip,
            "userAgent": joined.get("user-agent", ""),
        },
        "requestId": gateway_id(),
        "routeKey": "$default",
        "stage": "$default",
        "time": request_time(ms),
        "timeEpoch": ms,
    }
    if body:
        try:
            event["body"] = body.decode("utf-8")
            event["isBase64Encoded"] = False
        except UnicodeDecodeError:
            event["body"] = base64.b64encode(body).decode()
            event["isBase64Encoded"] = True
    else:
        event["isBase64Encoded"] = False
    return event


@dataclass(frozen=True, slots=True)
class HttpResult:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def http_api_result(result: Any) -> HttpResult:
    """Interpret a handler's answer as HTTP API (format 2.0) does.

    A dict with ``statusCode`` is a full response (``headers``, ``cookies``, ``body``,
    ``isBase64Encoded``); anything else is taken as a JSON body with status 200.
    """
    if not (isinstance(result, dict) and "statusCode" in result):
        return HttpResult(200, [("Content-Type", "application/json")], json.dumps(result).encode())
    headers = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()]
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((str(name), str(v)) for v in values)
    headers.extend(("Set-Cookie", str(c)) for c in result.get("cookies") or ())
    raw = result.get("body")
    if raw is None:
        body = b""
    elif result.get("isBase64Encoded"):
        body = base64.b64decode(raw)
    else:
        body = str(raw).encode()
    return HttpResult(int(result["statusCode"]), headers, body)


def scheduled(rule: str = "collab-sweeper") -> dict[str, Any]:
    """EventBridge's event for a ``rate(1 minute)`` schedule."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{rule}"],
        "detail": {},
    }


@dataclass
class LambdaContext:
    """The parts of Lambda's context object handlers and Powertools read."""

    function_name: str
    timeout_s: float = 30.0
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    identity: Any = None
    client_context: Any = None
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_s

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def select_route(body: str, route_keys: Mapping[str, Any]) -> str:
    """Route selection on ``$request.body.action``: a JSON object whose string ``action`` names a
    configured route goes there; anything else (other actions, non-JSON, non-objects) to ``$default``."""
    try:
        obj = json.loads(body)
    except ValueError:
        return "$default"
    action = obj.get("action") if isinstance(obj, dict) else None
    if isinstance(action, str) and not action.startswith("$") and action in route_keys:
        return action
    return "$default"
