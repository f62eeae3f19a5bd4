"""HTTP API entry point (contract section 1): API Gateway HTTP API, payload format 2.0.

Thin on purpose: the routes, validation, error mapping and the OpenAPI document live in
:mod:`collab.http.api`. The correlation id is API Gateway's request id. Neither the event nor its
headers are logged (the Authorization header carries the caller's token).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from collab.deadline import bounded
from collab.http import api
from collab.observability import logger, metrics


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, log_event=False)
@bounded  # every wait ends before the invocation does (collab.deadline)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return api.handle(event, context)
