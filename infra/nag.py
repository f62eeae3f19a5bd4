"""What the two outside judges, cdk-nag and Checkov, find and we accept: rule, resource and why.

One ledger for both. ``ledger.ack(construct, rule, reason)`` emits what the rule's tool reads:

- a cdk-nag AwsSolutions rule (``"SMG4"``, ``"IAM5[Resource::*]"``): cdk-nag 3 reports through CDK's
  validation API, so the finding is acknowledged with
  ``Validations.of(construct).acknowledge(Acknowledgment(...))`` on the construct it was reported on;
- a Checkov check (``"CKV_AWS_116"``): Checkov reads skips from the resource's own template
  metadata, ``Metadata: {checkov: {skip: [{id, comment}]}}``, so the reason travels in the template
  and anyone running Checkov on ``cdk.out`` sees it.

Findings with several instances (IAM5 wildcards) are acknowledged one by one, with the exact
resource string cdk-nag prints, so a new wildcard anywhere still fails the synth. The
infrastructure tests fail on an acknowledgment that is no longer needed (by either tool), on a new
finding, and on a reason that explains nothing; docs/deploy.md lists them all.

Everything not listed here is fixed in the stack instead (flow logs, access logs, encryption with
the stack's key, Multi-AZ, deletion protection, topic encryption and TLS, key rotation, reserved
concurrency, dead-letter queues, write actions scoped to resources).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Acknowledgment, CfnElement, CfnResource, Validations
from constructs import IConstruct

from infra.functions import FUNCTIONS

if TYPE_CHECKING:
    from infra.stack import CollabStack

PACK = "AwsSolutions"
CHECKOV_PREFIX = "CKV"

# (construct path, rule id, reason); the rule id is "AwsSolutions-..." (cdk-nag) or "CKV_..." (Checkov)
Acknowledged = tuple[str, str, str]


def is_checkov(rule: str) -> bool:
    return rule.startswith(CHECKOV_PREFIX)


class _Ledger:
    def __init__(self) -> None:
        self.entries: list[Acknowledged] = []
        self._skips: dict[str, list[dict[str, str]]] = {}

    def ack(self, construct: IConstruct, rules: str | tuple[str, ...], reason: str) -> None:
        """Acknowledge one finding, or the same finding as each tool names it, for one reason."""
        for rule in (rules,) if isinstance(rules, str) else rules:
            self._ack(construct, rule, reason)

    def _ack(self, construct: IConstruct, rule: str, reason: str) -> None:
        if is_checkov(rule):
            resource = _resource(construct)
            assert isinstance(resource, CfnResource), f"Checkov skips sit on resources: {construct.node.path}"
            skips = self._skips.setdefault(resource.node.path, [])
            skips.append({"id": rule, "comment": reason})
            resource.add_metadata("checkov", {"skip": skips})
            self.entries.append((resource.node.path, rule, reason))
            return
        Validations.of(construct).acknowledge(Acknowledgment(id=f"{PACK}::{PACK}-{rule}", reason=reason))
        self.entries.append((construct.node.path, f"{PACK}-{rule}", reason))


def _resource(construct: IConstruct) -> IConstruct:
    """The L1 resource a finding is reported on (an L2's default child)."""
    return construct.node.default_child or construct


def acknowledge_findings(stack: CollabStack) -> list[Acknowledged]:
    ledger = _Ledger()
    data, config = stack.data, stack.config

    # Secrets --------------------------------------------------------------------------------
    ledger.ack(
        _resource(data.jwt_secret), "SMG4",
        "JWT signing key: rotating it would invalidate every access token and ticket in flight, and "
        "the functions cache it for the container's life; rotate by a planned redeploy (docs/deploy.md).",
    )  # fmt: skip
    ledger.ack(
        _resource(data.redis_auth_secret), "SMG4",
        "ElastiCache AUTH token: rotation needs the AUTH token ROTATE/SET sequence on the replication "
        "group, which Secrets Manager rotation cannot drive; the cluster is reachable only from the "
        "functions' security groups inside the VPC, over TLS.",
    )  # fmt: skip
    ledger.ack(
        _resource(data.database.node.find_child("Secret")), "SMG4",
        "Postgres master credentials: used only by the migrate function at deploy time; the database "
        "is reachable only from the RDS Proxy security group, with TLS required.",
    )  # fmt: skip
    for secret, role in ((data.db_secret, "collab_runtime"), (data.migrator_secret, "collab_migrator")):
        ledger.ack(
            _resource(secret), "SMG4",
            f"Postgres {role} credentials: the password is set on the role by the migrate function at "
            "each deploy (a rotation is a redeploy); the functions re-read the secret every 5 minutes "
            "and at each reconnect. Reachable only through the RDS Proxy, with TLS required.",
        )  # fmt: skip

    # Ports ----------------------------------------------------------------------------------
    ledger.ack(
        data.redis, "AEC5",
        "Redis keeps port 6379: the replication group lives in isolated subnets and admits only the "
        "functions' security groups; a non-default port would add no protection there.",
    )  # fmt: skip
    ledger.ack(
        _resource(data.database), "RDS11",
        "Postgres keeps port 5432: the instance lives in isolated subnets and admits only the RDS "
        "Proxy's security group; a non-default port would add no protection there.",
    )  # fmt: skip

    # Choices made by context for non-production stacks (defaults keep these rules satisfied) ----
    if config.redis_replicas == 0:
        ledger.ack(
            data.redis, "AEC4",
            "Single-node Redis chosen with -c redisReplicas=0 for a non-production stack; the default "
            "(one replica, automatic failover, Multi-AZ) satisfies the rule.",
        )  # fmt: skip
    if not config.db_multi_az:
        ledger.ack(
            _resource(data.database), ("RDS3", "CKV_AWS_157"),
            "Single-AZ Postgres chosen with -c dbMultiAz=false for a non-production stack; the "
            "default deploys a Multi-AZ standby.",
        )  # fmt: skip
    if not config.deletion_protection:
        ledger.ack(
            _resource(data.database), "RDS10",
            "Deletion protection turned off with -c deletionProtection=false so a throwaway stack can "
            "be destroyed; the default keeps it on, and removal still takes a final snapshot.",
        )  # fmt: skip

    # Checkov on the database: what it asks for that the design makes moot -------------------------
    ledger.ack(
        _resource(data.database), "CKV_AWS_161",
        "IAM database authentication: the instance's only client is RDS Proxy, which logs in with the "
        "generated secret (Secrets Manager, the stack's key); the functions never reach the instance. "
        "Turning it on would enable a login path nobody uses.",
    )  # fmt: skip
    ledger.ack(
        _resource(data.database), "CKV_AWS_118",
        "Enhanced monitoring: the alarms read CPU, free storage and connections from the basic RDS "
        "metrics; OS-level metrics would add a monitoring role with an AWS managed policy and an "
        "RDSOSMetrics log group that RDS creates outside the stack (not encrypted with its key, not "
        "deleted with it). Turn on for a diagnosis, not by default.",
    )  # fmt: skip

    # Runtime --------------------------------------------------------------------------------
    for name, fn in stack.functions.functions.items():
        ledger.ack(
            _resource(fn), "L1",
            f"{name}: Python 3.13 rather than the newest runtime, because the layers ship bytecode, "
            "which is specific to a Python version and is compiled by an interpreter of it; 3.13 is "
            "the newest our build machines carry. Without bytecode every cold start compiles each "
            "module it imports (connect's init: 610-690 ms of CPU instead of 190-210, "
            "docs/performance.md).",
        )  # fmt: skip

        # Only asynchronous invocations can reach a dead-letter queue.
        if FUNCTIONS[name].trigger in ("websocket", "http"):
            ledger.ack(
                _resource(fn), "CKV_AWS_116",
                f"{name}: invoked synchronously by API Gateway, which gets the error and answers the "
                "client (who retries); Lambda never sends a synchronous invocation to a dead-letter "
                "queue. The asynchronously invoked sweeper and provider have one.",
            )  # fmt: skip
        elif FUNCTIONS[name].trigger == "deploy":
            ledger.ack(
                _resource(fn), "CKV_AWS_116",
                f"{name}: invoked synchronously by CDK's Provider framework, which reports a failure "
                "to CloudFormation and fails the deploy; Lambda never sends a synchronous invocation "
                "to a dead-letter queue. The framework function, invoked asynchronously, has one.",
            )  # fmt: skip
        if not config.reserved_concurrency:
            ledger.ack(
                _resource(fn), "CKV_AWS_115",
                f"{name}: reserved concurrency turned off with -c reservedConcurrency=false, for an "
                "account whose concurrency quota cannot spare it (Lambda keeps 100 unreserved); the "
                "default reserves each function its share (infra/functions.py).",
            )  # fmt: skip

    # Function roles -------------------------------------------------------------------------
    api_id = stack.get_logical_id(_cfn(stack.realtime.api))
    stage = stack.realtime.stage.stage_name
    interfaces = f"arn:<AWS::Partition>:ec2:{stack.region}:{stack.account}:network-interface/*"
    for name, role in stack.functions.roles.items():
        ledger.ack(
            _resource(role), "IAM5[Resource::*]",
            f"{name} role, inline policy: ec2:DescribeNetworkInterfaces and ec2:DescribeSubnets, the "
            "reads a VPC Lambda needs, do not support resource-level permissions.",
        )  # fmt: skip
        ledger.ack(
            _resource(role), f"IAM5[Resource::{interfaces}]",
            f"{name} role, inline policy: Lambda picks the ids of the network interfaces it creates, "
            "deletes and assigns addresses to, so these writes name any interface of this account and "
            "region; creating one is further limited to the function's own security group and the "
            "functions' subnets.",
        )  # fmt: skip
        policy = role.node.try_find_child("DefaultPolicy")
        assert policy is not None, f"{name} role has no default policy"
        ledger.ack(
            _resource(policy), "IAM5[Resource::*]",
            f"{name} role, default policy: xray:PutTraceSegments and xray:PutTelemetryRecords (added "
            "by active tracing) do not support resource-level permissions.",
        )  # fmt: skip
        if FUNCTIONS[name].posts:
            for method in ("POST", "GET", "DELETE"):
                arn = (
                    f"arn:<AWS::Partition>:execute-api:{stack.region}:{stack.account}:<{api_id}>/"
                    f"{stage}/{method}/@connections/*"
                )
                ledger.ack(
                    _resource(policy), f"IAM5[Resource::{arn}]",
                    f"{name} role: ManageConnections {method} on this WebSocket API's {stage} stage; "
                    "the trailing wildcard is the connection id, which exists only at run time.",
                )  # fmt: skip

    # Migrations provider (CDK's custom resource framework) -------------------------------------
    framework_role = stack.migrations.provider.node.find_child("framework-onEvent").node.find_child(
        "ServiceRole"
    )
    ledger.ack(
        _resource(framework_role),
        "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
        "Role of CDK's Provider framework function (not our code): basic execution grants only log "
        "writes; the function runs a few times per deploy.",
    )
    framework = stack.migrations.provider.node.find_child("framework-onEvent")
    ledger.ack(
        _resource(framework), "CKV_AWS_117",
        "CDK's Provider framework function talks only to the Lambda API (to invoke migrate, which does "
        "run in the VPC) and to CloudFormation's pre-signed S3 response URL; inside the VPC it would "
        "need network interfaces and the NAT for nothing it reaches.",
    )  # fmt: skip
    if not config.reserved_concurrency:
        ledger.ack(
            _resource(framework), "CKV_AWS_115",
            "CDK's Provider framework function: reserved concurrency turned off with "
            "-c reservedConcurrency=false, for an account whose concurrency quota cannot spare it; "
            "the default reserves 1.",
        )  # fmt: skip
    migrate_arn = stack.get_logical_id(_cfn(stack.migrations.function))
    ledger.ack(
        _resource(framework_role.node.find_child("DefaultPolicy")),
        f"IAM5[Resource::<{migrate_arn}.Arn>:*]",
        "CDK's Provider framework may invoke the migrate function and its versions (ARN:*); nothing else.",
    )

    # API Gateway ------------------------------------------------------------------------------
    if config.manage_api_gateway_account:
        ledger.ack(
            _resource(stack.realtime.api_gateway_role),
            "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
            "Account-wide API Gateway logging role, shared by every API in the account and region: "
            "AWS's managed policy for this purpose; scoping it to our log groups would break the others.",
        )
    for key, route in stack.realtime.routes.items():
        reason = (
            "$connect checks the single-use ticket in its handler: it must answer 401/403/429 "
            "(contract 3.1), which a Lambda authorizer cannot, and a cached authorizer would defeat "
            "single use."
            if key == "$connect"
            else f"WebSocket route {key}: API Gateway allows authorizers on $connect only; every "
            "later frame rides the connection that $connect authenticated."
        )
        ledger.ack(_resource(route), "APIG4", reason)
    if not config.jwt_authorizer_enabled:
        ledger.ack(
            _resource(stack.http.api.node.find_child("DefaultRoute")),
            "APIG4",
            "HTTP API without an external IdP: access tokens are our HS256 tokens, which API Gateway's "
            "JWT authorizer cannot verify (it needs a JWKS); the api function verifies every request. "
            "Configure jwtJwksUrl/jwtIssuer to add the authorizer.",
        )
    return ledger.entries


def _cfn(construct: IConstruct) -> CfnElement:
    child = construct.node.default_child
    assert isinstance(child, CfnElement)
    return child
