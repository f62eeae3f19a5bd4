"""The Collab stack: the architecture of README.md, one construct per box.

browser ──wss──> Realtime (WebSocket API: connect | disconnect | heartbeat | message; sweeper)
browser ─https─> HttpApi (api function)
both ──> Data (Redis; Postgres behind RDS Proxy; secrets), inside Network (VPC, NAT)
Migrations run at deploy time; Observability watches all of it.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from infra import nag
from infra.config import DeployConfig
from infra.data import Data
from infra.encryption import stack_key
from infra.functions import FunctionFactory
from infra.http_api import HttpApi
from infra.migrations import SchemaMigrations
from infra.network import Network
from infra.observability import Observability
from infra.realtime import Realtime
from infra.webhooks import Webhooks


class CollabStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: DeployConfig, **kwargs: object
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.config = config
        self.key = stack_key(self)
        self.network = Network(self, "Network", key=self.key, config=config)
        self.data = Data(self, "Data", vpc=self.network.vpc, key=self.key, config=config)
        self.functions = FunctionFactory(
            self, "Functions", vpc=self.network.vpc, data=self.data, key=self.key, config=config
        )
        self.migrations = SchemaMigrations(self, "Migrations", functions=self.functions, data=self.data)
        self.realtime = Realtime(self, "Realtime", functions=self.functions, config=config)
        api_function = self.functions.create(
            "api",
            environment={
                "CONNECTIONS_ENDPOINT": self.realtime.connections_endpoint,
                # Handed out with tickets (POST /ws-tickets): the wss URL of the stage.
                "WEBSOCKET_URL": self.realtime.url,
            },
        )
        self.http = HttpApi(self, "Http", function=api_function, key=self.key, config=config)
        self.webhooks = Webhooks(
            self,
            "Webhooks",
            functions=self.functions,
            connections_endpoint=self.realtime.connections_endpoint,
            publishers=[api_function, self.realtime.functions["message"]],
            key=self.key,
        )
        # After every function exists: the table decides who may post to connections.
        self.functions.allow_manage_connections(self.realtime.api.api_id, self.realtime.stage.stage_name)
        self.functions.allow_invoke()
        self.observability = Observability(
            self,
            "Observability",
            functions=self.functions.functions,
            dead_letter_queues={
                **self.functions.dead_letter_queues,
                "migrations-provider": self.migrations.dead_letters,
                "webhook-deliveries": self.webhooks.dead_letters,
            },
            websocket_api=self.realtime.api,
            websocket_stage=self.realtime.stage,
            http_api=self.http.api,
            http_stage=self.http.stage,
            data=self.data,
            config=config,
        )
        CfnOutput(self, "WebSocketUrl", value=self.realtime.url, description="wss URL browsers connect to")
        CfnOutput(self, "HttpApiUrl", value=self.http.url, description="https base URL of the HTTP API")
        CfnOutput(
            self,
            "ConnectionsEndpoint",
            value=self.realtime.connections_endpoint,
            description="Management API endpoint (post_to_connection)",
        )
        CfnOutput(self, "AlarmTopicArn", value=self.observability.topic.topic_arn)
        CfnOutput(self, "DashboardName", value=self.observability.dashboard.dashboard_name)
        self.acknowledgments = nag.acknowledge_findings(self)
