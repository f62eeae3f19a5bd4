"""The HTTP API: one ``$default`` route (any method, any path) proxied to the api function.

The function routes requests itself (contract section 4), so API Gateway only adds CORS, throttling,
access logs and, when an external identity provider is configured (``jwtJwksUrl`` + ``jwtIssuer``),
a JWT authorizer that rejects bad tokens before they cost an invocation. Without one, tokens are our
own HS256 tokens, which API Gateway's JWT authorizer cannot check (it needs a JWKS), so the function
verifies them.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk.aws_apigatewayv2_authorizers import HttpJwtAuthorizer
from aws_cdk.aws_apigatewayv2_integrations import HttpLambdaIntegration
from constructs import Construct

from infra.access_logs import HTTP_FIELDS, AccessLogs
from infra.config import DeployConfig


class HttpApi(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function: lambda_.IFunction,
        key: kms.IKey,
        config: DeployConfig,
    ) -> None:
        super().__init__(scope, construct_id)
        authorizer = None
        if config.jwt_authorizer_enabled:
            authorizer = HttpJwtAuthorizer(
                "JwtAuthorizer",
                config.jwt_issuer,
                jwt_audience=[config.jwt_audience],
                identity_source=["$request.header.Authorization"],
            )
        self.api = apigwv2.HttpApi(
            self,
            "HttpApi",
            api_name=f"{Stack.of(self).stack_name}-http",
            description="Collab request/response API (workspaces, members, tasks, tickets)",
            create_default_stage=False,
            default_integration=HttpLambdaIntegration("ApiIntegration", function),
            default_authorizer=authorizer,
            cors_preflight=apigwv2.CorsPreflightOptions(
                allow_origins=list(config.cors_origins),
                allow_methods=[
                    apigwv2.CorsHttpMethod.GET,
                    apigwv2.CorsHttpMethod.POST,
                    apigwv2.CorsHttpMethod.PATCH,
                    apigwv2.CorsHttpMethod.DELETE,
                    apigwv2.CorsHttpMethod.OPTIONS,
                ],
                # idempotency-key: mutating routes take one (docs/http-api.md)
                allow_headers=["authorization", "content-type", "idempotency-key"],
                # Bearer tokens, not cookies: browsers need no credentials mode.
                allow_credentials=False,
                max_age=Duration.hours(1),
            ),
        )
        access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.DESTROY,
            encryption_key=key,
        )
        self.stage = apigwv2.HttpStage(
            self,
            "Stage",
            http_api=self.api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(
                rate_limit=config.http_throttle_rate, burst_limit=config.http_throttle_burst
            ),
            access_log_settings=AccessLogs(access_logs, HTTP_FIELDS),
        )
        self.url = self.stage.url
