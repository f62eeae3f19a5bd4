"""WebSocket ``heartbeat`` route: refresh presence, sweep dead peers, answer ``heartbeat.ack``."""

from typing import Any

from collab.deadline import bounded
from collab.domain.usage import metered
from collab.observability import logger, metrics
from collab.runtime import runtime
from collab.ws import heartbeat

rt = runtime()


@metrics.log_metrics
@metered("heartbeat", check_budget=False)  # the workspace's cost meter; the message route checks the budget
@logger.inject_lambda_context(correlation_id_path="requestContext.connectionId", log_event=False)
@bounded  # every wait ends before the invocation does (collab.deadline)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return heartbeat.handle(runtime(), event)
