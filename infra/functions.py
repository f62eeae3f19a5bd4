"""Every Lambda function of the stack: one table of sizes and needs, one factory that builds them.

The table is the place to tune memory and timeouts. Each row also says which secrets the function
may read and whether it posts to WebSocket connections; the factory turns that into the function's
own role, so least privilege is visible in one screen instead of scattered ``grant_*`` calls.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra import layers
from infra.config import DeployConfig
from infra.data import DB_NAME, Data
from infra.layers import ROOT

# Python 3.13: the layers ship bytecode compiled by an interpreter of the runtime's version (without
# it a cold start compiles every import: connect's init 560-650 ms instead of 160-230 ms, measured in
# docs/performance.md), and 3.13 is the newest our build machines carry. Layers are built for it.
RUNTIME = lambda_.Runtime.PYTHON_3_13
PYTHON_VERSION = RUNTIME.name.removeprefix("python")  # "3.13"
ARCHITECTURE = lambda_.Architecture.ARM_64
LOG_RETENTION = logs.RetentionDays.ONE_MONTH


@dataclass(frozen=True)
class FunctionSpec:
    memory_mb: int
    timeout_s: int
    description: str
    redis: bool = False  # reads the Redis AUTH token secret
    db: bool = False  # reads the database credentials secret
    jwt: bool = False  # reads the JWT signing secret
    posts: bool = False  # calls the Management API (post / get / delete @connections)


# WebSocket routes get 10 s: API Gateway gives an integration 29 s, but a route that takes longer
# than a few seconds is broken anyway and should fail fast rather than pile up concurrency.
# The sweeper runs every minute: 55 s keeps two runs from overlapping. api stays under the HTTP
# API's 30 s integration limit. migrate runs once per deploy. webhooks: 120 s holds a batch of two
# messages, each bounded by a 45 s sending budget plus one last request's timeouts.
#
# Memory buys CPU here, not room: every handler's peak resident set is 60-70 MB, reached while
# importing and flat under load (python -m bench.memory), so 128 MB would hold any of them. Lambda's
# CPU share grows with memory (1,769 MB = one vCPU), so each size follows what the route spends:
# - message: 1,769 MB, a full vCPU. Its fan-out is CPU-bound (~90 us per recipient plus ~4 ms per
#   edit on one core, python -m bench.task_update); with half a vCPU a 50-member edit would take twice as
#   long and bill the same GB-seconds, so the full vCPU is the same price for half the latency.
# - api: 1,024 MB, for pydantic validation and the resolver, which are CPU-heavy per request.
# - connect, sweeper: 512 MB: a few round trips to Redis and Postgres plus an HMAC, mostly waiting.
# - heartbeat, disconnect: 256 MB: one or two Redis round trips; they run the most often (every 30 s
#   per connection), so their size matters most to the bill.
FUNCTIONS: dict[str, FunctionSpec] = {
    "connect": FunctionSpec(512, 10, "WebSocket $connect: check the ticket, register the connection",
                            redis=True, db=True, jwt=True),
    "disconnect": FunctionSpec(256, 10, "WebSocket $disconnect: drop the connection and presence",
                               redis=True, db=True),
    "heartbeat": FunctionSpec(256, 10, "WebSocket heartbeat: refresh liveness, answer heartbeat.ack",
                              redis=True, posts=True),
    "message": FunctionSpec(1769, 10, "WebSocket $default: sync, task and presence actions, fan-out",
                            redis=True, db=True, posts=True),
    "sweeper": FunctionSpec(512, 55, "Every minute: close connections without a heartbeat for 60 s",
                            redis=True, db=True, posts=True),
    "api": FunctionSpec(1024, 15, "HTTP API: workspaces, members, tasks, notifications, tickets",
                        redis=True, db=True, jwt=True, posts=True),
    "webhooks": FunctionSpec(512, 120, "Webhook deliveries: SQS FIFO batches and the minute retry tick",
                             redis=True, db=True, posts=True),
    "migrate": FunctionSpec(256, 120, "Deploy-time custom resource: apply schema migrations",
                            db=True),
}  # fmt: skip


class FunctionFactory(Construct):
    """Builds the functions of :data:`FUNCTIONS` with their roles, log groups, layers and env."""

    def __init__(
        self, scope: Construct, construct_id: str, *, vpc: ec2.IVpc, data: Data, config: DeployConfig
    ) -> None:
        super().__init__(scope, construct_id)
        self._vpc = vpc
        self._data = data
        self._config = config
        self.functions: dict[str, lambda_.Function] = {}
        self.security_groups: dict[str, ec2.SecurityGroup] = {}
        self.roles: dict[str, iam.Role] = {}
        self.layers = [
            lambda_.LayerVersion(
                self,
                "DependenciesLayer",
                code=lambda_.Code.from_asset(str(layers.dependencies_layer(PYTHON_VERSION))),
                compatible_runtimes=[RUNTIME],
                compatible_architectures=[ARCHITECTURE],
                description="Powertools, pydantic, PyJWT, psycopg, redis for Lambda arm64",
            ),
            lambda_.LayerVersion(
                self,
                "CollabLayer",
                code=lambda_.Code.from_asset(str(layers.collab_layer(python_version=PYTHON_VERSION))),
                compatible_runtimes=[RUNTIME],
                compatible_architectures=[ARCHITECTURE],
                description="The collab package shared by every handler",
            ),
        ]

    def create(self, name: str, *, environment: dict[str, str] | None = None) -> lambda_.Function:
        spec = FUNCTIONS[name]
        data = self._data
        title = name.capitalize()
        log_group = logs.LogGroup(
            self,
            f"{title}Logs",
            retention=LOG_RETENTION,
            removal_policy=RemovalPolicy.DESTROY,
        )
        role = iam.Role(
            self,
            f"{title}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Runs the {name} function; nothing else",
            # Inline (part of the role itself) so the permissions exist before Lambda validates the
            # role at CreateFunction; replaces AWSLambdaBasicExecutionRole/VPCAccessExecutionRole.
            inline_policies={
                "Runtime": iam.PolicyDocument(
                    statements=[
                        iam.PolicyStatement(
                            sid="WriteOwnLogs",
                            actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                            resources=[log_group.log_group_arn],
                        ),
                        iam.PolicyStatement(
                            sid="VpcNetworkInterfaces",
                            # These EC2 actions do not support resource-level permissions.
                            actions=[
                                "ec2:CreateNetworkInterface",
                                "ec2:DescribeNetworkInterfaces",
                                "ec2:DescribeSubnets",
                                "ec2:DeleteNetworkInterface",
                                "ec2:AssignPrivateIpAddresses",
                                "ec2:UnassignPrivateIpAddresses",
                            ],
                            resources=["*"],
                        ),
                    ]
                )
            },
        )
        readable = [
            (spec.db, data.db_secret),
            (spec.jwt, data.jwt_secret),
            (spec.redis, data.redis_auth_secret),
        ]
        for allowed, secret in readable:
            if allowed:
                role.add_to_policy(
                    iam.PolicyStatement(
                        actions=["secretsmanager:GetSecretValue"], resources=[secret.secret_arn]
                    )
                )
        security_group = ec2.SecurityGroup(
            self,
            f"{title}SecurityGroup",
            vpc=self._vpc,
            description=f"{name} function: egress to Redis, the RDS Proxy and (through NAT) AWS APIs",
            allow_all_outbound=True,
        )
        fn = lambda_.Function(
            self,
            title,
            description=spec.description,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler="handler.handler",
            code=lambda_.Code.from_asset(
                str(ROOT / "functions" / name), exclude=["__pycache__", "*.pyc", ".mypy_cache"]
            ),
            layers=self.layers,
            memory_size=spec.memory_mb,
            timeout=Duration.seconds(spec.timeout_s),
            role=role,
            log_group=log_group,
            tracing=lambda_.Tracing.ACTIVE,
            vpc=self._vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_groups=[security_group],
            environment={**self._environment(spec), **(environment or {})},
        )
        # Network reach mirrors secret access: no ingress rule, no connection, whatever the code.
        if spec.redis:
            data.allow_redis_from(security_group, f"the {name} function")
        if spec.db:
            data.allow_database_from(security_group, f"the {name} function")
        self.functions[name] = fn
        self.security_groups[name] = security_group
        self.roles[name] = role
        return fn

    def _environment(self, spec: FunctionSpec) -> dict[str, str]:
        data, config = self._data, self._config
        env = {
            "POWERTOOLS_SERVICE_NAME": "collab",
            "POWERTOOLS_METRICS_NAMESPACE": "Collab",
            "LOG_LEVEL": config.log_level.upper(),
            # The settings loader validates a Redis URL, a DB source and a JWT source at every cold
            # start, so every function gets them; only the ARNs travel, and only the functions of
            # the table with the matching flag may read the secret behind them.
            "REDIS_URL": data.redis_url,
            "DB_HOST": data.db_host,
            "DB_NAME": DB_NAME,
            "DB_SECRET_ARN": data.db_secret.secret_arn,
            "JWT_SECRET_ARN": data.jwt_secret.secret_arn,
            "JWT_ISSUER": config.jwt_issuer,
            "JWT_AUDIENCE": config.jwt_audience,
        }
        if spec.redis:
            env["REDIS_AUTH_SECRET_ARN"] = data.redis_auth_secret.secret_arn
        if config.jwt_jwks_url and spec.jwt:
            env["JWT_JWKS_URL"] = config.jwt_jwks_url
        return env

    def allow_manage_connections(self, api_id: str, stage_name: str) -> None:
        """Let the table's posting functions call the Management API of this API's stage only."""
        stack = Stack.of(self)
        resources = [
            stack.format_arn(
                service="execute-api",
                resource=api_id,
                resource_name=f"{stage_name}/{method}/@connections/*",
                arn_format=ArnFormat.SLASH_RESOURCE_NAME,
            )
            for method in ("POST", "GET", "DELETE")
        ]
        for name, role in self.roles.items():
            if FUNCTIONS[name].posts:
                role.add_to_policy(
                    iam.PolicyStatement(actions=["execute-api:ManageConnections"], resources=resources)
                )
