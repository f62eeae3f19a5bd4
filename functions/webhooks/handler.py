"""Webhook deliveries: SQS FIFO batches (one message group per workspace) and EventBridge's minute
schedule (retries that are due, events whose message was lost). All of it is
:func:`collab.domain.webhooks.handle`; docs/operations.md says how delivery works."""

from __future__ import annotations

from typing import Any

from collab.domain import webhooks
from collab.observability import logger
from collab.runtime import runtime


@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return webhooks.handle(runtime(), event)
