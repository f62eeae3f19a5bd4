"""Scheduled every minute: remove connections that stopped heartbeating (only those due)."""

from typing import Any

from collab import realtime
from collab.observability import logger, metrics
from collab.runtime import runtime

rt = runtime()


@metrics.log_metrics
@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return realtime.sweep(runtime())
