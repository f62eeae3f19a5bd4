"""WebSocket ``$disconnect`` (best effort: API Gateway may not deliver it; the sweeper catches up)."""

from typing import Any

from collab.deadline import bounded
from collab.observability import logger, metrics
from collab.runtime import runtime
from collab.ws import disconnect

rt = runtime()


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path="requestContext.connectionId", log_event=False)
@bounded  # every wait ends before the invocation does (collab.deadline)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return disconnect.handle(runtime(), event)
