"""WebSocket ``$default`` route: every action but heartbeat (sync, task.*, notification.read,
presence.update). The reply (ack, sync, error) is the route response."""

from typing import Any

from collab.deadline import bounded
from collab.domain.usage import metered
from collab.observability import logger, metrics
from collab.runtime import runtime
from collab.ws import message

rt = runtime()
message.prepare(rt)  # the first fan-out's connections, opened during the init (docs/performance.md)


@metrics.log_metrics
@metered("message", check_budget=True)  # the workspace's cost meter
@logger.inject_lambda_context(correlation_id_path="requestContext.connectionId", log_event=False)
@bounded  # every wait ends before the invocation does (collab.deadline)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return message.handle(runtime(), event)
