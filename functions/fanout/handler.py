"""A chunk of a large fan-out (at most 100 posts), invoked asynchronously by whichever function made
the event: :func:`collab.domain.fanout.handle`. Lambda retries a failed asynchronous invocation
twice; a post that went out is not repeated within one invocation, and clients apply an event once
(its ``version``), so a repeat is harmless."""

from typing import Any

from collab.deadline import bounded
from collab.domain import fanout
from collab.observability import logger, metrics
from collab.runtime import runtime

rt = runtime()


@metrics.log_metrics
@logger.inject_lambda_context(log_event=False)
@bounded  # every wait ends before the invocation does (collab.deadline)
def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    return fanout.handle(runtime(), event, memory_mb=int(getattr(context, "memory_limit_in_mb", 0) or 0))
