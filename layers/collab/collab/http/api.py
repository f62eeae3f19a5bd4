"""The HTTP API (contract section 4): Powertools' HTTP resolver over the routers of this package.

A request goes through three steps:

1. :func:`handle` checks what must hold before any route runs, in the order API Gateway would:
   the body's size (413) and encoding (400, 415), then the bearer token (401). The caller's user
   row is created or refreshed from the token (once per container per identity).
2. The resolver matches the route and validates path, query and body against the route's pydantic
   types (``enable_validation=True``), which is also what the OpenAPI document is generated from.
   No route: 405 with ``Allow`` when the path has routes for other methods, else 404.
3. The route (``*_routes.py``, one module per resource) calls one domain function and publishes
   what it committed (:mod:`collab.http.routing`).

Every failure is answered by :func:`collab.http.responses.error_response`.
"""

from __future__ import annotations

import base64
import binascii
import threading
import weakref
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import ResponseBuilder
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from collab.auth import tokens
from collab.domain import ledger, users
from collab.errors import CollabError, MethodNotAllowed, PayloadTooLarge, RateLimited, Unauthorized
from collab.http import (
    member_routes,
    notification_routes,
    operations_routes,
    task_routes,
    ticket_routes,
    webhook_routes,
    workspace_routes,
)
from collab.http.responses import MAX_BODY_BYTES, BadRequest, UnsupportedMediaType, error_response
from collab.http.routing import WRITES, Request, current, replay
from collab.observability import logger
from collab.protocol.wire import dumps
from collab.runtime import Runtime, runtime

WINDOW_MS = 60_000  # the per-user write budget's sliding window
SEEN_USERS_MAX = 10_000  # identities whose user row this container already refreshed

app = APIGatewayHttpResolver(
    enable_validation=True,
    # A response that does not match its declared model is a server bug: 500, not the default 422.
    response_validation_error_http_code=500,
    # The local gateway serves this API under /api/ (contract section 6).
    strip_prefixes=["/api"],
)
for _module in (ticket_routes, workspace_routes, member_routes, task_routes, notification_routes):
    app.include_router(_module.router)
app.include_router(workspace_routes.presence_router)
app.include_router(webhook_routes.router)
app.include_router(operations_routes.router)


def allowed_methods(path: str) -> list[str]:
    """The methods declared for a path, as the resolver matches it (none: the path is unknown)."""
    stripped = app._remove_prefix(path)
    routes = app._static_routes + app._dynamic_routes
    return sorted({r.method for r in routes if r.rule.match(stripped)})


@app.exception_handler(Exception)
def _on_error(exc: Exception) -> Response:
    if isinstance(exc, NotFoundError):
        # No route for this method and path: 405 with Allow when the path has other methods,
        # 404 only when the path itself is unknown.
        allow = allowed_methods(app.current_event.path)
        if allow:
            return error_response(MethodNotAllowed(allow))
    if isinstance(exc, ledger.Replayed):  # an Idempotency-Key seen before: its first answer
        return replay(exc.answer)
    request = current.get(None)
    if request is not None and request.entry is not None and _refusal(exc):
        assert isinstance(exc, CollabError)
        refusal = ledger.Answer(exc.status, dumps({"error": exc.to_wire()}))
        try:  # a refusal is the first answer too: a retry gets it again
            stored = ledger.record_refusal(request.rt.db, request.entry, refusal)
        except CollabError:
            logger.warning("refusal not recorded in the request ledger")
        else:
            if stored != refusal:  # another attempt answered first
                return replay(stored)
    return error_response(exc)


def _refusal(exc: Exception) -> bool:
    """A 4xx the domain decided (not a reused key, not the rate limit: those say nothing about it)."""
    if not isinstance(exc, CollabError) or isinstance(exc, ledger.KeyReused | RateLimited):
        return False
    return 400 <= exc.status < 500


def _write_budget(rt: Runtime, event: dict[str, Any], identity: tokens.Identity) -> None:
    """Per-user budget of HTTP writes, besides the stage-wide throttle. Redis down: let the write
    through (it needs only Postgres), logged."""
    method = str(((event.get("requestContext") or {}).get("http") or {}).get("method", "")).upper()
    if method not in WRITES:
        return
    limit = rt.settings.limits.http_writes_per_minute
    try:
        kind, retry = rt.store.begin(
            identity.user_id, bucket="httprl", limit=limit, window_ms=WINDOW_MS, now_ms=rt.clock.now_ms()
        )
    except CollabError:
        logger.warning("HTTP write budget not checked: cache unavailable")
        return
    if kind == "limited":
        raise RateLimited(f"rate limit: {limit} writes per minute", retry_after_ms=int(retry))


_resolving = threading.Lock()
_seen: weakref.WeakKeyDictionary[Runtime, dict[tokens.Identity, None]] = weakref.WeakKeyDictionary()


def _see(rt: Runtime, identity: tokens.Identity) -> None:
    """Create or refresh the caller's user row, once per container per distinct identity."""
    seen = _seen.setdefault(rt, {})
    if identity in seen:
        return
    users.upsert_user(rt.db, identity)
    if len(seen) >= SEEN_USERS_MAX:
        seen.clear()
    seen[identity] = None


def _header(event: dict[str, Any], name: str) -> str | None:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name:
            return str(value)
    return None


def _bearer(event: dict[str, Any]) -> str | None:
    value = _header(event, "authorization")
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    return token.strip()


def _readable(event: dict[str, Any]) -> dict[str, Any]:
    """The event with its body checked (size, encoding, media type) and decoded to text."""
    body = event.get("body")
    if body is None or body == "":
        return event
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(str(body), validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("the body is not valid base64") from None
    else:
        raw = str(body).encode("utf-8", "surrogatepass")
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body is larger than {MAX_BODY_BYTES} bytes")
    media = (_header(event, "content-type") or "").split(";")[0].strip().lower()
    if media and media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the body is not UTF-8") from None
    return {**event, "body": text, "isBase64Encoded": False}


def _respond(event: dict[str, Any], response: Response) -> dict[str, Any]:
    builder: ResponseBuilder[Any] = ResponseBuilder(response, serializer=app._serializer)
    return builder.build(APIGatewayProxyEventV2(event))


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Answer one API Gateway HTTP API (payload 2.0) event."""
    try:
        event = _readable(event)
        rt = runtime()
        identity = tokens.verify_access_token(_bearer(event), rt.settings)
        _write_budget(rt, event, identity)
        _see(rt, identity)
    except Exception as exc:  # noqa: BLE001 - every failure is answered through error_response
        result = _respond(event, error_response(exc))
    else:
        # The resolver keeps the request in shared state (the current event). Lambda runs one
        # invocation per container at a time; the local gateway runs handlers in threads, so
        # requests take turns here rather than read each other's event.
        with _resolving:
            token = current.set(Request(rt, identity))
            try:
                result = app.resolve(event, context)
            finally:
                current.reset(token)
    http = (event.get("requestContext") or {}).get("http") or {}
    logger.info(
        "request",
        extra={"method": http.get("method"), "path": http.get("path"), "status": result.get("statusCode")},
    )
    return result
