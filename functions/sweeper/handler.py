"""Scheduled every minute: remove connections that stopped heartbeating (only those due).

The one WebSocket-side function that traces with Powertools Tracer: importing the X-Ray SDK costs
more than the latency-critical routes can afford at cold start (docs/performance.md); they rely on
Lambda's active tracing instead.
"""

from typing import Any

from aws_lambda_powertools import Tracer

from collab.deadline import bounded
from collab.observability import logger, metrics
from collab.runtime import runtime
from collab.ws import sweeper

rt = runtime()
tracer = Tracer(service="collab", auto_patch=False)


@metrics.log_metrics
@tracer.capture_lambda_handler
@logger.inject_lambda_context(log_event=False)
@bounded  # every wait ends before the invocation does (collab.deadline)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return sweeper.handle(runtime())
