"""WebSocket ``$connect``: ticket, rate limit, membership, registration (200/401/403/429).

Never logs the event: its query string holds the ticket.
"""

from typing import Any

from collab.deadline import bounded
from collab.observability import logger, metrics
from collab.runtime import runtime
from collab.ws import connect

rt = runtime()  # settings are read, and checked, once per cold start


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path="requestContext.connectionId", log_event=False)
@bounded  # every wait ends before the invocation does (collab.deadline)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return connect.handle(runtime(), event)
