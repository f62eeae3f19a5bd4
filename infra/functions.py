"""Every Lambda function of the stack: one table of sizes and needs, one factory that builds them.

The table is the place to tune memory and timeouts. What each function may do (post to WebSocket
connections, reach Postgres and Redis, read which secrets) is the table of
:mod:`collab_dev.permissions`, shared with the local gateway and the test harness, which enforce it;
the factory turns each row into the function's own role and network reach, so least privilege is
visible in one screen instead of scattered ``grant_*`` calls, and what is granted is what is tested.

Each row also says how the function is invoked and how long it runs, which sizes its reserved
concurrency (:func:`reserved_concurrency`) and decides whether it needs a dead-letter queue (only
asynchronous invocations can use one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from collab_dev.permissions import PERMISSIONS, Permissions
from infra import layers
from infra.config import ContextError, DeployConfig
from infra.data import DB_NAME, Data
from infra.layers import ROOT

# Python 3.13: the layers ship bytecode compiled by an interpreter of the runtime's version (without
# it a cold start compiles every import: connect's init 560-650 ms instead of 160-230 ms, measured in
# docs/performance.md), and 3.13 is the newest our build machines carry. Layers are built for it.
RUNTIME = lambda_.Runtime.PYTHON_3_13
PYTHON_VERSION = RUNTIME.name.removeprefix("python")  # "3.13"
ARCHITECTURE = lambda_.Architecture.ARM_64
LOG_RETENTION = logs.RetentionDays.ONE_MONTH
DEAD_LETTER_RETENTION = Duration.days(14)

# How a function is invoked: the WebSocket or HTTP stage (synchronously, at most the stage's
# throttle rate), the one-minute schedule (asynchronously), the deploy (once, synchronously by
# the custom resource provider) or another function (asynchronously: a large fan-out's chunks).
Trigger = Literal["websocket", "http", "schedule", "queue", "deploy", "async"]
# A fan-out chunk older than this is dropped (to the dead-letter queue): clients that missed the
# event find the gap at their next heartbeat (it carries their seq) and sync; a minute-old post
# would only arrive after that.
ASYNC_MAX_EVENT_AGE = Duration.seconds(60)


@dataclass(frozen=True)
class FunctionSpec:
    memory_mb: int
    timeout_s: int
    description: str
    trigger: Trigger
    # Expected duration of one invocation in AWS, warm: the average billed durations of docs/deploy.md
    # (the handlers' measured CPU in docs/performance.md plus AWS round trips). Sizes concurrency.
    duration_ms: int
    permissions: Permissions  # from collab_dev.permissions.PERMISSIONS

    @property
    def redis(self) -> bool:  # reaches Redis, reads the Redis AUTH token secret
        return self.permissions.redis

    @property
    def db(self) -> bool:  # reaches the RDS Proxy, reads the database credentials secret
        return self.permissions.postgres

    @property
    def jwt(self) -> bool:  # reads the JWT signing secret
        return self.permissions.jwt

    @property
    def posts(self) -> bool:  # calls the Management API (post / get / delete @connections)
        return self.permissions.posts


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
                            "websocket", 50, PERMISSIONS["connect"]),
    "disconnect": FunctionSpec(256, 10, "WebSocket $disconnect: drop the connection and presence",
                               "websocket", 50, PERMISSIONS["disconnect"]),
    "heartbeat": FunctionSpec(256, 10, "WebSocket heartbeat: refresh liveness, answer heartbeat.ack",
                              "websocket", 10, PERMISSIONS["heartbeat"]),
    "message": FunctionSpec(1769, 10, "WebSocket $default: sync, task and presence actions, fan-out",
                            "websocket", 60, PERMISSIONS["message"]),
    "sweeper": FunctionSpec(512, 55, "Every minute: close connections without a heartbeat for 60 s",
                            "schedule", 1000, PERMISSIONS["sweeper"]),
    "api": FunctionSpec(1024, 15, "HTTP API: workspaces, members, tasks, notifications, tickets",
                        "http", 50, PERMISSIONS["api"]),
    "webhooks": FunctionSpec(512, 120, "Webhook deliveries: SQS FIFO batches and the minute retry tick",
                             "queue", 2000, PERMISSIONS["webhooks"]),
    "migrate": FunctionSpec(256, 120, "Deploy-time custom resource: apply schema migrations",
                            "deploy", 5000, PERMISSIONS["migrate"]),
    # fanout: 1,769 MB like message, whose work it shares (CPU-bound posts); ~100 posts in ~15 ms.
    "fanout": FunctionSpec(1769, 10, "A chunk of a large fan-out (at most 100 posts), invoked asynchronously",
                           "async", 20, PERMISSIONS["fanout"]),
}  # fmt: skip

QUEUE_WORKERS = 5  # webhook deliveries in flight at once (one workspace each)

# Lambda keeps this much of the account's quota unreserved, for the functions without a reservation.
UNRESERVED_MINIMUM = 100
# CDK's custom resource framework function (infra/migrations.py) reserves one more.
PROVIDER_FRAMEWORK_RESERVED = 1


def reserved_concurrency(name: str, config: DeployConfig) -> int | None:
    """The function's reserved concurrency, or None when ``-c reservedConcurrency=false``.

    Concurrency is arrival rate x duration (Little's law). The most that can arrive at a route is
    its stage's throttle rate (``wsThrottleRate`` / ``httpThrottleRate``), so a route gets that rate
    x its expected duration x ``concurrencyHeadroom`` (default 4: twice for a burst, which API
    Gateway allows at twice the rate, twice for a slow dependency or a wave of cold starts).
    Reserving it guarantees the route that much and caps it there: a ``$connect`` flood with
    Postgres hanging would otherwise hold rate x timeout = 500/s x 10 s = 5,000 executions, the
    whole account's quota, and starve every other route, the sweeper and the HTTP API.
    The sweeper and migrate run one at a time by design; 1 also keeps two runs from overlapping.
    """
    if not config.reserved_concurrency:
        return None
    spec = FUNCTIONS[name]
    if spec.trigger == "websocket":
        rate = config.ws_throttle_rate
    elif spec.trigger == "async":
        # fan-out chunks: at most one per 100 recipients of an event, and events come from frames
        # (the WebSocket stage's rate); workspaces over 100 live members are few, so the stage's rate
        # bounds the chunks' rate as well for any realistic mix (docs/capacity.md)
        rate = config.ws_throttle_rate
    elif spec.trigger == "http":
        rate = config.http_throttle_rate
    elif spec.trigger == "queue":
        # The webhooks worker: SQS FIFO hands a workspace's messages to one invocation at a time,
        # so this caps how many workspaces are delivered at once, and what slow receivers can hold.
        return QUEUE_WORKERS
    else:
        return 1
    return max(2, math.ceil(rate * spec.duration_ms / 1000 * config.concurrency_headroom))


def check_concurrency_budget(config: DeployConfig) -> int:
    """Total reserved by the stack; fails the synth when the account's quota cannot spare it."""
    if not config.reserved_concurrency:
        return 0
    total = sum(reserved_concurrency(n, config) or 0 for n in FUNCTIONS) + PROVIDER_FRAMEWORK_RESERVED
    available = config.account_concurrency - UNRESERVED_MINIMUM
    if total > available:
        raise ContextError(
            f"context accountConcurrency: the functions reserve {total} concurrent executions, but an "
            f"account with a quota of {config.account_concurrency} can reserve at most {available} "
            "(Lambda keeps 100 unreserved). Lower wsThrottleRate/httpThrottleRate or "
            "concurrencyHeadroom, raise the quota, or deploy with -c reservedConcurrency=false."
        )
    return total


class FunctionFactory(Construct):
    """Builds the functions of :data:`FUNCTIONS` with their roles, log groups, layers and env."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        data: Data,
        key: kms.IKey,
        config: DeployConfig,
    ) -> None:
        super().__init__(scope, construct_id)
        self._vpc = vpc
        self._data = data
        self._config = config
        self.key = key
        self.reserved_total = check_concurrency_budget(config)
        self.functions: dict[str, lambda_.Function] = {}
        self.security_groups: dict[str, ec2.SecurityGroup] = {}
        self.roles: dict[str, iam.Role] = {}
        self.dead_letter_queues: dict[str, sqs.Queue] = {}
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
            encryption_key=self.key,
        )
        security_group = ec2.SecurityGroup(
            self,
            f"{title}SecurityGroup",
            vpc=self._vpc,
            description=f"{name} function: egress to Redis, the RDS Proxy and (through NAT) AWS APIs",
            allow_all_outbound=True,
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
                        *self._network_interface_statements(security_group),
                    ]
                )
            },
        )
        # Secrets are encrypted with the stack's key: reading one needs the key too, through
        # Secrets Manager only (the function gets no ciphertext it could decrypt itself).
        if spec.db or spec.jwt or spec.redis:
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["kms:Decrypt"],
                    resources=[self.key.key_arn],
                    conditions={
                        "StringEquals": {
                            "kms:ViaService": f"secretsmanager.{Stack.of(self).region}.amazonaws.com"
                        }
                    },
                )
            )
        readable = [
            (spec.db, data.db_secret),
            (spec.jwt, data.jwt_secret),
            (spec.redis, data.redis_auth_secret),
            (spec.permissions.migrates, data.admin_secret),
            (spec.permissions.migrates, data.migrator_secret),
        ]
        for allowed, secret in readable:
            if allowed:
                role.add_to_policy(
                    iam.PolicyStatement(
                        actions=["secretsmanager:GetSecretValue"], resources=[secret.secret_arn]
                    )
                )
        # Only an asynchronous invocation can end in a dead-letter queue; the stages and the provider
        # invoke synchronously and see the error themselves.
        dead_letters = None
        if spec.trigger in ("schedule", "queue", "async"):  # the webhooks worker also runs on a schedule
            dead_letters = dead_letter_queue(self, f"{title}DeadLetters", self.key, sender=role)
            self.dead_letter_queues[name] = dead_letters
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
            environment_encryption=self.key,
            reserved_concurrent_executions=reserved_concurrency(name, self._config),
            dead_letter_queue=dead_letters,
            **(
                {"max_event_age": ASYNC_MAX_EVENT_AGE, "retry_attempts": 2} if spec.trigger == "async" else {}
            ),
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

    def _network_interface_statements(self, security_group: ec2.ISecurityGroup) -> list[iam.PolicyStatement]:
        """What Lambda needs to attach the function to the VPC, each write scoped as far as EC2 allows.

        Creating an interface names the interface, the subnet and the security group: only this
        function's group in the functions' subnets. Deleting and (un)assigning addresses name the
        interface only, whose id Lambda picks: any interface of this account and region. The two
        Describe calls are reads that support no resource-level permissions, hence ``*``.
        """
        stack = Stack.of(self)

        def ec2_arn(resource: str, name: str) -> str:
            return stack.format_arn(
                service="ec2", resource=resource, resource_name=name, arn_format=ArnFormat.SLASH_RESOURCE_NAME
            )

        interfaces = ec2_arn("network-interface", "*")
        subnets = self._vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS).subnet_ids
        return [
            iam.PolicyStatement(
                sid="CreateNetworkInterfaces",
                actions=["ec2:CreateNetworkInterface"],
                resources=[
                    interfaces,
                    ec2_arn("security-group", security_group.security_group_id),
                    *(ec2_arn("subnet", subnet) for subnet in subnets),
                ],
            ),
            iam.PolicyStatement(
                sid="ManageNetworkInterfaces",
                actions=[
                    "ec2:DeleteNetworkInterface",
                    "ec2:AssignPrivateIpAddresses",
                    "ec2:UnassignPrivateIpAddresses",
                ],
                resources=[interfaces],
            ),
            iam.PolicyStatement(
                sid="DescribeNetwork",
                actions=["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"],
                resources=["*"],
            ),
        ]

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
            "CORS_ORIGINS": ",".join(config.cors_origins),
        }
        if spec.redis:
            env["REDIS_AUTH_SECRET_ARN"] = data.redis_auth_secret.secret_arn
        if spec.permissions.migrates:  # the master user; the roles' passwords from their secrets
            env["DB_SECRET_ARN"] = data.admin_secret.secret_arn
            env["DB_RUNTIME_SECRET_ARN"] = data.db_secret.secret_arn
            env["DB_MIGRATOR_SECRET_ARN"] = data.migrator_secret.secret_arn
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

    def allow_invoke(self) -> None:
        """Let the table's fanning-out functions invoke the functions of their ``invokes`` row (and
        nothing else), and tell them which (``FANOUT_FUNCTION``)."""
        for name, fn in self.functions.items():
            for target in FUNCTIONS[name].permissions.invokes:
                callee = self.functions[target]
                self.roles[name].add_to_policy(
                    iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[callee.function_arn])
                )
                fn.add_environment(f"{target.upper()}_FUNCTION", callee.function_name)


def dead_letter_queue(
    scope: Construct, construct_id: str, key: kms.IKey, *, sender: iam.IGrantable
) -> sqs.Queue:
    """An encrypted queue that keeps failed asynchronous events for two weeks (alarmed on depth).

    Lambda writes to it with the function's role, which needs the key as well as the queue: exactly
    ``GenerateDataKey`` and ``Decrypt`` (what SQS asks of a producer), through SQS only, rather than
    the wildcard actions of ``grant_send_messages``.
    """
    queue = sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.KMS,
        encryption_master_key=key,
        enforce_ssl=True,
        retention_period=DEAD_LETTER_RETENTION,
    )
    grant_send(queue, key, sender)
    return queue


def grant_send(queue: sqs.IQueue, key: kms.IKey, sender: iam.IGrantable) -> None:
    """``SendMessage`` to a queue encrypted with ``key``: the queue, and exactly ``GenerateDataKey``
    and ``Decrypt`` of the key (what SQS asks of a producer), through SQS only, rather than the
    wildcard actions of ``grant_send_messages``."""
    region = Stack.of(queue).region
    principal = sender.grant_principal
    principal.add_to_principal_policy(
        iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[queue.queue_arn])
    )
    principal.add_to_principal_policy(
        iam.PolicyStatement(
            actions=["kms:GenerateDataKey", "kms:Decrypt"],
            resources=[key.key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"sqs.{region}.amazonaws.com"}},
        )
    )
