"""The WebSocket API, its route functions and the sweeper that closes dead connections.

Routes (selection expression ``$request.body.action``): ``$connect``, ``$disconnect``,
``heartbeat`` and ``$default`` (every other action). ``heartbeat`` and ``$default`` are two-way:
a route response keyed ``$default`` makes API Gateway send the handler's returned ``body`` back to
the client, which is how ``heartbeat.ack``, ``ack`` and ``sync`` reach the sender without a
Management API call.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk.aws_apigatewayv2_integrations import WebSocketLambdaIntegration
from constructs import Construct

from infra.access_logs import WEBSOCKET_FIELDS, AccessLogs
from infra.config import DeployConfig
from infra.functions import FunctionFactory

ROUTES = {
    "$connect": "connect",
    "$disconnect": "disconnect",
    "heartbeat": "heartbeat",
    "$default": "message",
}
TWO_WAY_ROUTES = ("heartbeat", "$default")


class Realtime(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: FunctionFactory,
        config: DeployConfig,
    ) -> None:
        super().__init__(scope, construct_id)
        self.api = apigwv2.WebSocketApi(
            self,
            "WebSocketApi",
            api_name=f"{Stack.of(self).stack_name}-ws",
            description="Collab real-time channel: edits, presence and notifications",
            route_selection_expression="$request.body.action",
        )
        access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.DESTROY,
            encryption_key=functions.key,
        )
        self.stage = apigwv2.WebSocketStage(
            self,
            "Stage",
            web_socket_api=self.api,
            stage_name=config.stage_name,
            auto_deploy=True,
            # Applies to every route (DefaultRouteSettings). The per-user limit of 100 frames a
            # minute lives in the code; this only caps what the whole API may cost.
            throttle=apigwv2.ThrottleSettings(
                rate_limit=config.ws_throttle_rate, burst_limit=config.ws_throttle_burst
            ),
            access_log_settings=AccessLogs(access_logs, WEBSOCKET_FIELDS),
        )
        if config.manage_api_gateway_account:
            account = self._api_gateway_account()
            self.stage.node.add_dependency(account)

        self.connections_endpoint = self.stage.callback_url
        self.url = self.stage.url
        env = {"CONNECTIONS_ENDPOINT": self.connections_endpoint}
        self.functions: dict[str, lambda_.Function] = {}
        for name in (*ROUTES.values(), "sweeper", "fanout"):
            self.functions[name] = functions.create(name, environment=env)

        self.routes: dict[str, apigwv2.WebSocketRoute] = {}
        for route_key, name in ROUTES.items():
            self.routes[route_key] = self.api.add_route(
                route_key,
                integration=WebSocketLambdaIntegration(
                    f"{name.capitalize()}Integration", self.functions[name]
                ),
                return_response=route_key in TWO_WAY_ROUTES,
            )

        sweeper = self.functions["sweeper"]
        # A missed sweep is made up by the next one a minute later: retrying would only overlap it.
        sweeper.configure_async_invoke(retry_attempts=0, max_event_age=Duration.minutes(1))
        self.schedule = events.Rule(
            self,
            "SweeperSchedule",
            description="Close connections without a heartbeat for 60 s (contract 3.5: noticed within 90 s)",
            schedule=events.Schedule.rate(Duration.minutes(1)),
            targets=[targets.LambdaFunction(sweeper, retry_attempts=0)],
        )

    def _api_gateway_account(self) -> apigw.CfnAccount:
        """The account-wide role API Gateway uses to write WebSocket logs.

        One per account and region: every API there shares it, so it carries AWS's managed policy
        for exactly this purpose rather than one scoped to our log group, which would break the
        logging of any other API in the account. Turn off with ``-c manageApiGatewayAccount=false``
        where the account already has it.
        """
        role = iam.Role(
            self,
            "ApiGatewayCloudWatchRole",
            assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
            description="API Gateway account setting: push access logs to CloudWatch Logs",
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name(
                    "service-role/AmazonAPIGatewayPushToCloudWatchLogs"
                )
            ],
        )
        # Keep the role when the stack goes: the account setting still points at it.
        role.apply_removal_policy(RemovalPolicy.RETAIN)
        self.api_gateway_role = role
        account = apigw.CfnAccount(self, "ApiGatewayAccount", cloud_watch_role_arn=role.role_arn)
        account.apply_removal_policy(RemovalPolicy.RETAIN)
        return account
