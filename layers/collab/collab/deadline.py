"""The invocation's time budget: every wait ends before Lambda stops the function.

Lambda stops a function at its timeout wherever it is: a fan-out stuck on an endpoint that accepts
TCP and never answers would be stopped after the commit and before the ``ack``, and the sender would
retry a change that was made. So each handler records when its invocation must end
(``context.get_remaining_time_in_millis()``, by :func:`bounded`), and every wait (a Management API
fan-out, a retry's backoff) ends by :func:`deadline`: that end less :data:`MARGIN_S`, and never
later than its own cap. Postgres and Redis have their own per-call timeouts (docs/deploy.md, "Time
budget"), sized so that their sum fits the same budget.

A context variable, not a global: the local gateway runs many invocations at once in one process.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar

# Time kept back to answer after the last wait: build the reply, flush metrics and logs, return.
# Measured at a few ms; 300 ms leaves room for a slow CPU share (256 MB is 1/7 of a vCPU).
MARGIN_S = 0.3

_end: ContextVar[float | None] = ContextVar("invocation_end", default=None)

F = TypeVar("F", bound=Callable[..., Any])


def bounded(handler: F) -> F:
    """Decorate a Lambda handler: its waits end before the invocation's own end."""

    @functools.wraps(handler)
    def run(event: Any, context: Any) -> Any:
        token = _end.set(end_of(context))
        try:
            return handler(event, context)
        finally:
            _end.reset(token)

    return run  # type: ignore[return-value]


def end_of(context: Any) -> float | None:
    """When the invocation ends, on ``time.monotonic()``'s clock; None without a Lambda context."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    return time.monotonic() + remaining() / 1000


def deadline(cap_s: float) -> float:
    """The moment a wait must end by: ``cap_s`` from now, or the invocation's end less the margin."""
    now = time.monotonic()
    end = _end.get()
    capped = now + cap_s
    return capped if end is None else min(capped, end - MARGIN_S)


def remaining() -> float | None:
    """Seconds left before the margin; None outside an invocation."""
    end = _end.get()
    return None if end is None else end - MARGIN_S - time.monotonic()
