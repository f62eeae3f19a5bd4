"""API Gateway access logs that can never contain a WebSocket ticket or a bearer token.

The ticket travels in the ``$connect`` query string (contract 3.1) and the access token in the
``Authorization`` header, so the format lists ``$context`` variables one by one and uses none that
echoes the request: no ``$context.requestTemplate``, no query string, no headers, no path
(HTTP API paths carry only ids). Tests assert this on the synthesized template.
"""

from __future__ import annotations

import json

import jsii
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_logs as logs

WEBSOCKET_FIELDS = {
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTimeEpoch",
    "connectionId": "$context.connectionId",
    "eventType": "$context.eventType",
    "routeKey": "$context.routeKey",
    "messageId": "$context.messageId",
    "status": "$context.status",
    "integrationStatus": "$context.integrationStatus",
    "integrationLatency": "$context.integrationLatency",
    "error": "$context.error.message",
    "ip": "$context.identity.sourceIp",
}

HTTP_FIELDS = {
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTimeEpoch",
    "httpMethod": "$context.httpMethod",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "integrationStatus": "$context.integrationStatus",
    "integrationLatency": "$context.integrationLatency",
    "latency": "$context.responseLatency",
    "error": "$context.error.message",
    "authorizerError": "$context.authorizer.error",
    "ip": "$context.identity.sourceIp",
}


@jsii.implements(apigwv2.IAccessLogSettings)
class AccessLogs:
    """Access log settings for a v2 stage: JSON lines with exactly ``fields``, into ``log_group``."""

    def __init__(self, log_group: logs.ILogGroup, fields: dict[str, str]) -> None:
        self._destination = apigwv2.LogGroupLogDestination(log_group)
        self._format = apigw.AccessLogFormat.custom(json.dumps(fields, separators=(",", ":")))

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return self._format
