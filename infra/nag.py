"""cdk-nag AwsSolutions findings we accept: each names the rule, the resource and why.

cdk-nag 3 reports through CDK's validation API, so a finding is acknowledged with
``Validations.of(construct).acknowledge(Acknowledgment(...))`` on the construct it was reported on.
Findings with several instances (IAM5 wildcards) are acknowledged one by one, with the exact
resource string cdk-nag prints, so a new wildcard anywhere still fails the synth.

Everything not listed here is fixed in the stack instead (flow logs, access logs, encryption,
Multi-AZ, deletion protection, topic encryption and TLS, key rotation).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Acknowledgment, CfnElement, Validations
from constructs import IConstruct

from infra.functions import FUNCTIONS

if TYPE_CHECKING:
    from infra.stack import CollabStack

PACK = "AwsSolutions"

Acknowledged = tuple[str, str, str]  # (construct path, rule id, reason)


class _Ledger:
    def __init__(self) -> None:
        self.entries: list[Acknowledged] = []

    def ack(self, construct: IConstruct, rule: str, reason: str) -> None:
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
            _resource(data.database), "RDS3",
            "Single-AZ Postgres chosen with -c dbMultiAz=false for a non-production stack; the "
            "default deploys a Multi-AZ standby.",
        )  # fmt: skip
    if not config.deletion_protection:
        ledger.ack(
            _resource(data.database), "RDS10",
            "Deletion protection turned off with -c deletionProtection=false so a throwaway stack can "
            "be destroyed; the default keeps it on, and removal still takes a final snapshot.",
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

    # Function roles -------------------------------------------------------------------------
    api_id = stack.get_logical_id(_cfn(stack.realtime.api))
    stage = stack.realtime.stage.stage_name
    for name, role in stack.functions.roles.items():
        ledger.ack(
            _resource(role), "IAM5[Resource::*]",
            f"{name} role, inline policy: the EC2 network-interface actions a VPC Lambda needs "
            "(Create/Describe/DeleteNetworkInterface, DescribeSubnets, Assign/UnassignPrivateIpAddresses) "
            "do not support resource-level permissions.",
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
