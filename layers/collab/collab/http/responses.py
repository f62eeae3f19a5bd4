"""The one mapping from errors to HTTP responses, and how each route documents its errors.

Every failure becomes ``{"error": {"code", "message", ...}}`` here, in :func:`error_response`, with
its status from the error tree (:mod:`collab.errors`). A bad request is never a 500: a 5xx means the
server or a backing service failed.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
    ResponseValidationError,
)

from collab.errors import CollabError, MethodNotAllowed, NotFound, ValidationError
from collab.http.schemas import ErrorResponse
from collab.models import error_message
from collab.observability import logger

# 64 KB: the largest legitimate body (a task with a 10,000-character description, JSON-escaped) is
# well under it; anything bigger is refused before it is parsed. API Gateway itself allows 10 MB.
MAX_BODY_BYTES = 64 * 1024


class BadRequest(ValidationError):
    """The request could not be read at all (not JSON, not UTF-8, bad base64)."""

    status = 400
    default_message = "malformed request"


class UnsupportedMediaType(ValidationError):
    status = 415
    default_message = "the body must be application/json"


def _validation(exc: RequestValidationError) -> CollabError:
    errs = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errs):
        return BadRequest("the body is not valid JSON")
    if not errs:
        return ValidationError()
    first = errs[0]
    field = ".".join(str(p) for p in first.get("loc", ())) or "request"
    return ValidationError(f"{field}: {error_message(first)}", field=field)


def error_response(exc: BaseException) -> Response:
    """The HTTP response for any exception: status from the error tree, body ``{"error": ...}``."""
    if isinstance(exc, RequestValidationError):
        err: CollabError = _validation(exc)
    elif isinstance(exc, RequestUnsupportedContentType):
        err = UnsupportedMediaType()
    elif isinstance(exc, NotFoundError):
        err = NotFound("no such route")
    elif isinstance(exc, CollabError):
        err = exc
    else:
        err = CollabError()
    if isinstance(exc, ResponseValidationError):
        logger.error("response does not match its model", extra={"errors": str(exc.errors())[:2000]})
    elif err.status >= 500:
        logger.exception("request failed", exc_info=exc)
    headers: dict[str, str] = {"Cache-Control": "no-store"}
    if isinstance(err, MethodNotAllowed):
        headers["Allow"] = ", ".join(err.allow)
    if err.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="collab"'
    retry = err.extra.get("retry_after_ms")
    if err.status == 429 and retry:
        headers["Retry-After"] = str(max(1, -(-int(retry) // 1000)))
    return Response(err.status, "application/json", {"error": err.to_wire()}, headers)


DESCRIPTIONS = {
    400: "Malformed request: the body is not JSON, not UTF-8 or not valid base64",
    401: "Missing, malformed or expired bearer token",
    403: "Not a member of the workspace, or the role is not enough",
    404: "Unknown or invisible resource",
    405: "The path is known but not with this method: the Allow header lists its methods",
    409: "Conflict with the current state",
    413: f"The body is larger than {MAX_BODY_BYTES} bytes",
    415: "The body is not application/json",
    422: "A path, query or body value is invalid (or an Idempotency-Key reused for another request)",
    429: "Over the caller's budget of writes per minute; Retry-After says when to retry",
    500: "Internal error",
    503: "A backing service did not answer; retry later",
}
READ = (401, 413, 422, 500, 503)  # what any route can answer
WRITE = (400, 401, 413, 415, 422, 500, 503)  # ... and a route that reads a body


def documented(ok: int, description: str, errors: tuple[int, ...]) -> dict[int, Any]:
    """The ``responses`` of an operation: its success, and each error with the one error body."""
    out: dict[int, Any] = {ok: {"description": description}}
    for code in sorted(set(errors)):
        out[code] = {
            "description": DESCRIPTIONS[code],
            "content": {"application/json": {"model": ErrorResponse}},
        }
    return out
