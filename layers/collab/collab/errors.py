"""One error tree for the whole system.

::

    CollabError                 internal          500
     +-- ConfigError            internal          500   (cold start: a variable is missing/malformed)
     +-- ValidationError        validation_error  422
     +-- PayloadTooLarge        payload_too_large 413
     +-- Unauthorized           unauthorized      401
     +-- Forbidden              forbidden         403
     +-- NotFound               not_found         404
     +-- MethodNotAllowed       method_not_allowed 405  (HTTP: a known path, another method; v1.2)
     +-- Conflict               conflict          409
     +-- RateLimited            rate_limited      429
     +-- Unavailable            internal          503   (a backing service did not answer)

Each error knows its protocol ``code`` and HTTP ``status``; ``errors.to_wire`` is the one place that
turns an error into the ``{"code", "message", ...}`` object used by ``ack``, ``error`` and HTTP bodies.
Messages are written for clients: they never carry tokens, SQL or stack traces.
"""

from __future__ import annotations

from typing import Any, Literal

# Every protocol error code (contract 3.3, plus ``conflict`` from v1.1 and the HTTP API's
# ``method_not_allowed`` from v1.2), for the models that carry one.
ErrorCode = Literal[
    "validation_error",
    "unauthorized",
    "forbidden",
    "not_found",
    "conflict",
    "method_not_allowed",
    "rate_limited",
    "payload_too_large",
    "internal",
]


class CollabError(Exception):
    code = "internal"
    status = 500
    default_message = "internal error"

    def __init__(self, message: str | None = None, **extra: Any) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message
        self.extra = extra

    def to_wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        body.update({k: v for k, v in self.extra.items() if v is not None})
        return body


class ConfigError(CollabError):
    default_message = "configuration error"


class ValidationError(CollabError):
    code = "validation_error"
    status = 422
    default_message = "invalid input"

    def __init__(self, message: str | None = None, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(message, field=field, **extra)


class PayloadTooLarge(CollabError):
    code = "payload_too_large"
    status = 413
    default_message = "payload too large"


class Unauthorized(CollabError):
    code = "unauthorized"
    status = 401
    default_message = "unauthorized"


class Forbidden(CollabError):
    code = "forbidden"
    status = 403
    default_message = "forbidden"


class NotFound(CollabError):
    code = "not_found"
    status = 404
    default_message = "not found"


class MethodNotAllowed(CollabError):
    """A known path asked with a method it does not declare; ``allow`` lists the ones it does."""

    code = "method_not_allowed"
    status = 405
    default_message = "method not allowed on this path"

    def __init__(self, allow: list[str]) -> None:
        super().__init__(f"method not allowed on this path; allowed: {', '.join(allow)}")
        self.allow = allow


class Conflict(CollabError):
    code = "conflict"
    status = 409
    default_message = "conflict"


class RateLimited(CollabError):
    code = "rate_limited"
    status = 429
    default_message = "rate limited"

    def __init__(self, message: str | None = None, *, retry_after_ms: int) -> None:
        super().__init__(message, retry_after_ms=int(retry_after_ms))
        self.retry_after_ms = int(retry_after_ms)


class Unavailable(CollabError):
    status = 503
    default_message = "service temporarily unavailable"


def to_wire(exc: BaseException) -> dict[str, Any]:
    """The protocol error object for any exception; unknown ones become ``internal``."""
    if isinstance(exc, CollabError):
        return exc.to_wire()
    return CollabError().to_wire()


def status_of(exc: BaseException) -> int:
    return exc.status if isinstance(exc, CollabError) else 500
