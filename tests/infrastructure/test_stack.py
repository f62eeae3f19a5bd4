"""Template assertions: what the synthesized stack must contain, item by item of issue 6."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from infra.access_logs import HTTP_FIELDS, WEBSOCKET_FIELDS
from infra.functions import FUNCTIONS, reserved_concurrency
from infra.migrations import migrations_hash
from tests.infrastructure.conftest import VARIANT_CONTEXT, Synth

pytestmark = [pytest.mark.infra, pytest.mark.xdist_group("infra")]

FORBIDDEN_IN_ACCESS_LOGS = ("querystring", "requesttemplate", "ticket", "token", "header", "path")


# helpers ------------------------------------------------------------------------------------
def ref(logical_id: str) -> dict[str, str]:
    return {"Ref": logical_id}


def function_id(synth: Synth, name: str) -> str:
    return synth.logical_id(synth.stack.functions.functions[name])


def function_props(synth: Synth, name: str) -> dict[str, Any]:
    return synth.resources[function_id(synth, name)]["Properties"]


def statements_of_role(synth: Synth, name: str) -> list[dict[str, Any]]:
    """Every statement that applies to the function's role: inline policies and attached ones."""
    role_id = synth.logical_id(synth.stack.functions.roles[name])
    role = synth.resources[role_id]["Properties"]
    statements = [s for p in role.get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
    for policy in synth.of_type("AWS::IAM::Policy").values():
        if ref(role_id) in policy["Properties"]["Roles"]:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    assert not role.get("ManagedPolicyArns"), f"{name} role must not carry managed policies"
    return statements


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def resources_for(statements: list[dict[str, Any]], action: str) -> list[Any]:
    return [r for s in statements if action in as_list(s["Action"]) for r in as_list(s["Resource"])]


def route(synth: Synth, key: str) -> tuple[str, dict[str, Any]]:
    [(lid, res)] = [
        (lid, r)
        for lid, r in synth.of_type("AWS::ApiGatewayV2::Route").items()
        if r["Properties"]["RouteKey"] == key
        and r["Properties"]["ApiId"] == ref(synth.logical_id(synth.stack.realtime.api))
    ]
    return lid, res["Properties"]


# WebSocket API --------------------------------------------------------------------------------
def test_websocket_api_selects_routes_on_the_action_field(synth: Synth) -> None:
    Template.from_json(synth.template).has_resource_properties(
        "AWS::ApiGatewayV2::Api",
        {"ProtocolType": "WEBSOCKET", "RouteSelectionExpression": "$request.body.action"},
    )


def test_websocket_routes_invoke_one_function_each(synth: Synth) -> None:
    expected = {
        "$connect": "connect",
        "$disconnect": "disconnect",
        "heartbeat": "heartbeat",
        "$default": "message",
    }
    integrations = synth.of_type("AWS::ApiGatewayV2::Integration")
    for key, name in expected.items():
        _, props = route(synth, key)
        integration_id = props["Target"]["Fn::Join"][1][1]["Ref"]
        uri = json.dumps(integrations[integration_id]["Properties"]["IntegrationUri"])
        assert function_id(synth, name) in uri, f"{key} should invoke {name}"
    ws_api = ref(synth.logical_id(synth.stack.realtime.api))
    keys = {
        r["Properties"]["RouteKey"]
        for r in synth.of_type("AWS::ApiGatewayV2::Route").values()
        if r["Properties"]["ApiId"] == ws_api
    }
    assert keys == set(expected)


@pytest.mark.parametrize("key", ["heartbeat", "$default"])
def test_two_way_routes_send_the_handler_body_back(synth: Synth, key: str) -> None:
    route_id, props = route(synth, key)
    assert props["RouteResponseSelectionExpression"] == "$default"
    responses = [
        r["Properties"]
        for r in synth.of_type("AWS::ApiGatewayV2::RouteResponse").values()
        if r["Properties"]["RouteId"] == ref(route_id)
    ]
    assert responses == [
        {
            "ApiId": ref(synth.logical_id(synth.stack.realtime.api)),
            "RouteId": ref(route_id),
            "RouteResponseKey": "$default",
        }
    ]


@pytest.mark.parametrize("key", ["$connect", "$disconnect"])
def test_connect_and_disconnect_are_one_way(synth: Synth, key: str) -> None:
    route_id, props = route(synth, key)
    assert "RouteResponseSelectionExpression" not in props
    assert all(
        r["Properties"]["RouteId"] != ref(route_id)
        for r in synth.of_type("AWS::ApiGatewayV2::RouteResponse").values()
    )


def stage_of(synth: Synth, api: Any) -> dict[str, Any]:
    [stage] = [
        r["Properties"]
        for r in synth.of_type("AWS::ApiGatewayV2::Stage").values()
        if r["Properties"]["ApiId"] == ref(synth.logical_id(api))
    ]
    return stage


def test_websocket_stage_auto_deploys_with_throttling_and_access_logs(synth: Synth) -> None:
    stage = stage_of(synth, synth.stack.realtime.api)
    assert stage["StageName"] == "prod"
    assert stage["AutoDeploy"] is True
    assert stage["DefaultRouteSettings"] == {"ThrottlingRateLimit": 500, "ThrottlingBurstLimit": 1000}
    log_group = synth.logical_id(synth.stack.realtime.node.find_child("AccessLogs"))
    assert stage["AccessLogSettings"]["DestinationArn"] == {"Fn::GetAtt": [log_group, "Arn"]}


@pytest.mark.parametrize(("api", "fields"), [("realtime", WEBSOCKET_FIELDS), ("http", HTTP_FIELDS)])
def test_access_log_format_never_holds_the_ticket_or_token(synth: Synth, api: str, fields: dict) -> None:
    owner = getattr(synth.stack, api).api
    log_format = stage_of(synth, owner)["AccessLogSettings"]["Format"]
    parsed = json.loads(log_format)
    assert parsed == fields
    for value in parsed.values():
        assert re.fullmatch(r"\$context\.[A-Za-z.]+", value), value
    lowered = log_format.lower()
    for word in FORBIDDEN_IN_ACCESS_LOGS:
        assert word not in lowered, f"access log format mentions {word!r}"
    for needed in (
        "$context.requestId",
        "$context.status",
        "$context.integrationLatency",
        "$context.identity.sourceIp",
        "$context.routeKey",
    ):
        assert needed in parsed.values()
    if api == "realtime":
        for needed in ("$context.connectionId", "$context.eventType"):
            assert needed in parsed.values()


def test_websocket_stage_waits_for_the_account_logging_role(synth: Synth) -> None:
    stage_id = synth.logical_id(synth.stack.realtime.stage)
    account = synth.of_type("AWS::ApiGateway::Account")
    assert len(account) == 1
    [account_id] = account
    assert account_id in synth.resources[stage_id]["DependsOn"]


# HTTP API ------------------------------------------------------------------------------------
def test_http_api_proxies_everything_to_the_api_function(synth: Synth) -> None:
    http_api = ref(synth.logical_id(synth.stack.http.api))
    [default] = [
        r["Properties"]
        for r in synth.of_type("AWS::ApiGatewayV2::Route").values()
        if r["Properties"]["ApiId"] == http_api
    ]
    assert default["RouteKey"] == "$default"
    assert default["AuthorizationType"] == "NONE"  # the function verifies HS256 tokens itself
    integration = next(
        r["Properties"]
        for r in synth.of_type("AWS::ApiGatewayV2::Integration").values()
        if r["Properties"]["ApiId"] == http_api
    )
    assert integration["IntegrationType"] == "AWS_PROXY"
    assert integration["PayloadFormatVersion"] == "2.0"
    assert function_id(synth, "api") in json.dumps(integration["IntegrationUri"])
    assert not synth.of_type("AWS::ApiGatewayV2::Authorizer")


def test_http_api_cors_stage_and_throttling(synth: Synth) -> None:
    api = synth.resources[synth.logical_id(synth.stack.http.api)]["Properties"]
    cors = api["CorsConfiguration"]
    assert cors["AllowOrigins"] == ["https://board.example.com", "http://localhost:8080"]  # cdk.json
    assert {"GET", "POST", "PATCH", "DELETE"} <= set(cors["AllowMethods"])
    assert set(cors["AllowHeaders"]) == {"authorization", "content-type", "idempotency-key"}
    stage = stage_of(synth, synth.stack.http.api)
    assert stage["StageName"] == "$default"
    assert stage["AutoDeploy"] is True
    assert stage["DefaultRouteSettings"] == {"ThrottlingRateLimit": 200, "ThrottlingBurstLimit": 400}
    assert "DestinationArn" in stage["AccessLogSettings"]


def test_jwt_authorizer_when_an_external_issuer_is_configured(variant: Synth) -> None:
    [authorizer] = variant.of_type("AWS::ApiGatewayV2::Authorizer").values()
    props = authorizer["Properties"]
    assert props["AuthorizerType"] == "JWT"
    assert props["JwtConfiguration"] == {
        "Issuer": VARIANT_CONTEXT["jwtIssuer"],
        "Audience": [VARIANT_CONTEXT["jwtAudience"]],
    }
    assert props["IdentitySource"] == ["$request.header.Authorization"]
    http_api = ref(variant.logical_id(variant.stack.http.api))
    [default] = [
        r["Properties"]
        for r in variant.of_type("AWS::ApiGatewayV2::Route").values()
        if r["Properties"]["ApiId"] == http_api
    ]
    assert default["AuthorizationType"] == "JWT"
    for name, spec in FUNCTIONS.items():
        env = function_props(variant, name)["Environment"]["Variables"]
        assert env["JWT_ISSUER"] == VARIANT_CONTEXT["jwtIssuer"]
        assert env["JWT_AUDIENCE"] == VARIANT_CONTEXT["jwtAudience"]
        assert ("JWT_JWKS_URL" in env) == spec.jwt
        if spec.jwt:
            assert env["JWT_JWKS_URL"] == VARIANT_CONTEXT["jwtJwksUrl"]


# Functions -----------------------------------------------------------------------------------
def test_one_function_per_entry_point_plus_migrate(synth: Synth) -> None:
    assert set(synth.stack.functions.functions) == {
        "connect",
        "disconnect",
        "heartbeat",
        "message",
        "sweeper",
        "api",
        "webhooks",
        "migrate",
        "fanout",
    }
    python_functions = [
        r
        for r in synth.of_type("AWS::Lambda::Function").values()
        if r["Properties"].get("Handler") == "handler.handler"
    ]
    assert len(python_functions) == len(FUNCTIONS)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_runtime_architecture_tracing_and_size(synth: Synth, name: str) -> None:
    props = function_props(synth, name)
    spec = FUNCTIONS[name]
    assert props["Runtime"] == "python3.13"
    assert props["Architectures"] == ["arm64"]
    assert props["Handler"] == "handler.handler"
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert props["MemorySize"] == spec.memory_mb
    assert props["Timeout"] == spec.timeout_s
    assert len(props["Layers"]) == 2
    assert props["VpcConfig"]["SubnetIds"], "functions run inside the VPC"
    for subnet in props["VpcConfig"]["SubnetIds"]:
        assert "functionsSubnet" in subnet["Ref"], "functions sit in the private (NAT) subnets"
    log_group = synth.resources[props["LoggingConfig"]["LogGroup"]["Ref"]]
    assert log_group["Properties"]["RetentionInDays"] == 30


def test_function_code_is_its_own_folder(synth: Synth) -> None:
    """The staged asset of each function holds exactly the files of functions/<name>/."""
    root = Path(__file__).resolve().parents[2]
    for name in FUNCTIONS:
        key = function_props(synth, name)["Code"]["S3Key"]
        staged = synth.path.parent / f"asset.{key.removesuffix('.zip')}"
        folder = root / "functions" / name
        assert _files(staged) == _files(folder), name
        assert (folder / "__init__.py").is_file()


def _files(folder: Path) -> set[str]:
    return {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_environment(synth: Synth, name: str) -> None:
    spec = FUNCTIONS[name]
    env = function_props(synth, name)["Environment"]["Variables"]
    assert env["POWERTOOLS_SERVICE_NAME"] == "collab"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "Collab"
    assert env["LOG_LEVEL"] == "INFO"
    # the settings loader needs these at every cold start
    for always in (
        "REDIS_URL",
        "DB_HOST",
        "DB_NAME",
        "DB_SECRET_ARN",
        "JWT_SECRET_ARN",
        "JWT_ISSUER",
        "JWT_AUDIENCE",
    ):
        assert always in env, always
    redis = synth.logical_id(synth.stack.data.redis)
    assert env["REDIS_URL"] == {
        "Fn::Join": [
            "",
            [
                "rediss://",
                {"Fn::GetAtt": [redis, "PrimaryEndPoint.Address"]},
                ":",
                {"Fn::GetAtt": [redis, "PrimaryEndPoint.Port"]},
            ],
        ]
    }
    assert env["DB_HOST"] == {"Fn::GetAtt": [synth.logical_id(synth.stack.data.proxy), "Endpoint"]}
    assert ("REDIS_AUTH_SECRET_ARN" in env) == spec.redis
    assert "JWT_JWKS_URL" not in env
    ws_api = synth.logical_id(synth.stack.realtime.api)
    if name == "migrate":
        assert "CONNECTIONS_ENDPOINT" not in env
    else:
        assert env["CONNECTIONS_ENDPOINT"] == {
            "Fn::Join": [
                "",
                ["https://", ref(ws_api), ".execute-api.us-east-1.", ref("AWS::URLSuffix"), "/prod"],
            ]
        }
    if name == "api":
        assert env["WEBSOCKET_URL"] == {
            "Fn::Join": [
                "",
                ["wss://", ref(ws_api), ".execute-api.us-east-1.", ref("AWS::URLSuffix"), "/prod"],
            ]
        }
    else:
        assert "WEBSOCKET_URL" not in env
    # secrets travel as ARNs only; no secret value is ever in the environment
    assert "resolve:secretsmanager" not in json.dumps(env)


def test_every_function_has_its_own_role(synth: Synth) -> None:
    roles = {json.dumps(function_props(synth, name)["Role"]) for name in FUNCTIONS}
    assert len(roles) == len(FUNCTIONS)


ALLOWED_ACTIONS = {
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "secretsmanager:GetSecretValue",
    "execute-api:ManageConnections",
    "kms:Decrypt",  # secrets (via Secrets Manager) and the dead-letter queue (via SQS)
    "kms:GenerateDataKey",  # the dead-letter queue, via SQS
    "sqs:SendMessage",  # the dead-letter queue
    "lambda:InvokeFunction",  # the fan-out function, by its ARN (test below)
    # the webhooks function's SQS event source
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_role_reads_only_the_secrets_its_function_uses(synth: Synth, name: str) -> None:
    spec, data = FUNCTIONS[name], synth.stack.data
    statements = statements_of_role(synth, name)
    actions = {a for s in statements for a in as_list(s["Action"])}
    assert actions <= ALLOWED_ACTIONS, actions - ALLOWED_ACTIONS
    assert all(s["Effect"] == "Allow" for s in statements)
    expected = set()
    if spec.db:
        expected.add(synth.logical_id(data.db_secret))
    if spec.permissions.migrates:
        expected.add(synth.logical_id(data.database.node.find_child("Secret").node.find_child("Attachment")))
        expected.add(synth.logical_id(data.migrator_secret))
    if spec.jwt:
        expected.add(synth.logical_id(data.jwt_secret))
    if spec.redis:
        expected.add(synth.logical_id(data.redis_auth_secret))
    readable = {r["Ref"] for r in resources_for(statements, "secretsmanager:GetSecretValue")}
    assert readable == expected


def test_secret_access_matches_the_issue(synth: Synth) -> None:
    readers = {kind: {n for n, s in FUNCTIONS.items() if getattr(s, kind)} for kind in ("db", "jwt", "redis")}
    # connect (v1.3: Redis alone; the first frame admits) and disconnect never query Postgres
    assert readers["db"] == {"message", "sweeper", "api", "webhooks", "migrate"}
    assert readers["jwt"] == {"connect", "api"}  # tickets are verified at $connect only
    assert readers["redis"] == set(FUNCTIONS) - {"migrate"}
    # $disconnect posts presence.left to the peers: without the grant every such post is a 403
    assert {n for n, s in FUNCTIONS.items() if s.posts} == {
        "disconnect", "heartbeat", "message", "sweeper", "api", "webhooks", "fanout"
    }  # fmt: skip


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_only_fanning_out_functions_may_invoke_the_fanout_function_and_nothing_else(
    synth: Synth, name: str
) -> None:
    """Large fan-outs are split across asynchronous invocations of the fan-out function (issue 15):
    the functions that fan out to a workspace may invoke it, by its ARN, and are told its name."""
    statements = statements_of_role(synth, name)
    granted = resources_for(statements, "lambda:InvokeFunction")
    env = function_props(synth, name)["Environment"]["Variables"]
    fanout = function_id(synth, "fanout")
    if name in ("disconnect", "heartbeat", "message", "sweeper", "api"):
        assert granted == [{"Fn::GetAtt": [fanout, "Arn"]}], name
        assert env["FANOUT_FUNCTION"] == ref(fanout)
    else:
        assert granted == [] and "FANOUT_FUNCTION" not in env, name
    for statement in statements:
        assert "lambda:*" not in as_list(statement["Action"])


def test_fanout_chunks_are_dropped_after_a_minute_to_a_dead_letter_queue(synth: Synth) -> None:
    [config] = [
        r["Properties"]
        for r in synth.of_type("AWS::Lambda::EventInvokeConfig").values()
        if r["Properties"]["FunctionName"] == ref(function_id(synth, "fanout"))
    ]
    assert config["MaximumEventAgeInSeconds"] == 60 and config["MaximumRetryAttempts"] == 2
    props = function_props(synth, "fanout")
    assert "DeadLetterConfig" in props


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_manage_connections_only_on_this_stage_and_only_for_posting_functions(
    synth: Synth, name: str
) -> None:
    statements = statements_of_role(synth, name)
    granted = resources_for(statements, "execute-api:ManageConnections")
    if not FUNCTIONS[name].posts:
        assert granted == []
        return
    ws_api = synth.logical_id(synth.stack.realtime.api)
    assert granted == [
        {
            "Fn::Join": [
                "",
                [
                    "arn:",
                    ref("AWS::Partition"),
                    ":execute-api:us-east-1:123456789012:",
                    ref(ws_api),
                    f"/prod/{method}/@connections/*",
                ],
            ]
        }
        for method in ("POST", "GET", "DELETE")
    ]
    for statement in statements:
        assert "execute-api:*" not in as_list(statement["Action"])


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_role_writes_only_its_own_log_group(synth: Synth, name: str) -> None:
    statements = statements_of_role(synth, name)
    log_group = function_props(synth, name)["LoggingConfig"]["LogGroup"]["Ref"]
    assert resources_for(statements, "logs:PutLogEvents") == [{"Fn::GetAtt": [log_group, "Arn"]}]
    wildcard = {a for s in statements if s["Resource"] == "*" for a in as_list(s["Action"])}
    # reads and X-Ray writes that support no resource-level permissions; no write to EC2 on "*"
    assert wildcard <= {
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSubnets",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }, wildcard


def test_sweeper_runs_every_minute(synth: Synth) -> None:
    rule = synth.resources[synth.logical_id(synth.stack.realtime.schedule)]
    props = rule["Properties"]
    assert props["ScheduleExpression"] == "rate(1 minute)"
    assert props["State"] == "ENABLED"
    [target] = props["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [function_id(synth, "sweeper"), "Arn"]}
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 0}


# Data --------------------------------------------------------------------------------------------
def test_webhooks_go_through_a_fifo_queue_with_a_dead_letter_queue(synth: Synth) -> None:
    queues = synth.of_type("AWS::SQS::Queue")
    queue_id = synth.logical_id(synth.stack.webhooks.queue)
    dlq_id = synth.logical_id(synth.stack.webhooks.dead_letters)
    assert {queue_id, dlq_id} <= set(queues)
    queue, dlq = queues[queue_id]["Properties"], queues[dlq_id]["Properties"]
    assert queue["FifoQueue"] is True and dlq["FifoQueue"] is True
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]},
        "maxReceiveCount": 5,
    }
    assert queue["VisibilityTimeout"] == 6 * FUNCTIONS["webhooks"].timeout_s
    key = {"Fn::GetAtt": [synth.logical_id(synth.stack.key), "Arn"]}
    assert queue["KmsMasterKeyId"] == key and dlq["KmsMasterKeyId"] == key  # the stack's key
    for policy in synth.of_type("AWS::SQS::QueuePolicy").values():  # TLS only
        [deny] = policy["Properties"]["PolicyDocument"]["Statement"]
        assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    [mapping] = synth.of_type("AWS::Lambda::EventSourceMapping").values()
    props = mapping["Properties"]
    assert props["EventSourceArn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    assert props["FunctionName"] == ref(function_id(synth, "webhooks"))
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_webhook_retries_run_every_minute_and_publishers_may_enqueue(synth: Synth) -> None:
    rule = synth.resources[synth.logical_id(synth.stack.webhooks.schedule)]["Properties"]
    assert rule["ScheduleExpression"] == "rate(1 minute)"
    [target] = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [function_id(synth, "webhooks"), "Arn"]}
    queue_id = synth.logical_id(synth.stack.webhooks.queue)
    for name in FUNCTIONS:
        env = function_props(synth, name)["Environment"]["Variables"]
        sends = resources_for(statements_of_role(synth, name), "sqs:SendMessage")
        to_queue = {"Fn::GetAtt": [queue_id, "Arn"]} in sends
        if name in ("api", "message", "webhooks"):
            assert env["WEBHOOK_QUEUE_URL"] == ref(queue_id), name
            assert to_queue, name
        else:
            assert "WEBHOOK_QUEUE_URL" not in env and not to_queue, name


def test_rds_proxy_requires_tls_and_uses_the_generated_secret(synth: Synth) -> None:
    [proxy] = synth.of_type("AWS::RDS::DBProxy").values()
    props = proxy["Properties"]
    assert props["RequireTLS"] is True
    assert props["EngineFamily"] == "POSTGRESQL"
    assert props["Auth"][0]["AuthScheme"] == "SECRETS"
    assert all("dataSubnet" in s["Ref"] for s in props["VpcSubnetIds"])


def test_redis_encrypts_in_transit_and_at_rest_with_an_auth_token(synth: Synth) -> None:
    [redis] = synth.of_type("AWS::ElastiCache::ReplicationGroup").values()
    props = redis["Properties"]
    assert props["TransitEncryptionEnabled"] is True
    assert props["TransitEncryptionMode"] == "required"
    assert props["AtRestEncryptionEnabled"] is True
    secret = synth.logical_id(synth.stack.data.redis_auth_secret)
    assert props["AuthToken"] == {
        "Fn::Join": ["", ["{{resolve:secretsmanager:", ref(secret), ":SecretString:::}}"]]
    }
    assert props["Engine"] == "redis"
    assert props["NumCacheClusters"] == 2
    assert props["MultiAZEnabled"] is True
    assert props["AutomaticFailoverEnabled"] is True


def test_postgres_is_encrypted_pinned_backed_up_and_protected(synth: Synth) -> None:
    [db] = synth.of_type("AWS::RDS::DBInstance").values()
    props = db["Properties"]
    assert props["Engine"] == "postgres"
    assert re.fullmatch(r"16\.\d+", props["EngineVersion"]), "pin the minor version"
    assert props["StorageEncrypted"] is True
    assert props["BackupRetentionPeriod"] >= 7
    assert props["DeletionProtection"] is True
    assert props["MultiAZ"] is True
    assert props["AutoMinorVersionUpgrade"] is False
    assert props["PubliclyAccessible"] is False
    assert db["DeletionPolicy"] == "Snapshot"


def test_deletion_protection_and_sizes_follow_context(variant: Synth) -> None:
    [db] = variant.of_type("AWS::RDS::DBInstance").values()
    assert db["Properties"]["DeletionProtection"] is False
    assert db["Properties"]["MultiAZ"] is False
    [redis] = variant.of_type("AWS::ElastiCache::ReplicationGroup").values()
    assert redis["Properties"]["NumCacheClusters"] == 1
    assert redis["Properties"]["AutomaticFailoverEnabled"] is False
    assert len(variant.of_type("AWS::EC2::NatGateway")) == 2
    assert not variant.of_type("AWS::ApiGateway::Account")
    assert stage_of(variant, variant.stack.realtime.api)["StageName"] == "live"
    Template.from_json(variant.template).has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": VARIANT_CONTEXT["alarmEmail"]}
    )


def test_secrets_are_generated_never_written(synth: Synth) -> None:
    secrets = synth.of_type("AWS::SecretsManager::Secret")
    assert len(secrets) == 5  # JWT key, Redis AUTH token, Postgres master, runtime and migration roles
    for secret in secrets.values():
        assert "GenerateSecretString" in secret["Properties"]
        assert "SecretString" not in secret["Properties"]


def test_data_stores_sit_in_isolated_subnets_behind_their_security_groups(synth: Synth) -> None:
    [group] = synth.of_type("AWS::ElastiCache::SubnetGroup").values()
    assert all("dataSubnet" in s["Ref"] for s in group["Properties"]["SubnetIds"])
    [db_group] = synth.of_type("AWS::RDS::DBSubnetGroup").values()
    assert all("dataSubnet" in s["Ref"] for s in db_group["Properties"]["SubnetIds"])
    data = synth.stack.data
    redis_sg = synth.logical_id(data.redis_security_group)
    proxy_sg = synth.logical_id(data.proxy_security_group)
    ingress = synth.of_type("AWS::EC2::SecurityGroupIngress").values()

    def sources(group_id: str, port: int) -> set[str]:
        return {
            i["Properties"]["SourceSecurityGroupId"]["Fn::GetAtt"][0]
            for i in ingress
            if i["Properties"]["GroupId"] == {"Fn::GetAtt": [group_id, "GroupId"]}
            and i["Properties"]["FromPort"] == port
        }

    groups = {n: synth.logical_id(sg) for n, sg in synth.stack.functions.security_groups.items()}
    assert sources(redis_sg, 6379) == {groups[n] for n, s in FUNCTIONS.items() if s.redis}
    assert sources(proxy_sg, 5432) == {groups[n] for n, s in FUNCTIONS.items() if s.db}


# Network -------------------------------------------------------------------------------------
def test_vpc_spans_two_zones_with_nat_and_flow_logs(synth: Synth) -> None:
    subnets = synth.of_type("AWS::EC2::Subnet").values()
    assert {s["Properties"]["AvailabilityZone"] for s in subnets} == {"us-east-1a", "us-east-1b"}
    assert len(synth.of_type("AWS::EC2::NatGateway")) == 1
    routes = synth.of_type("AWS::EC2::Route")
    private_default = [r for lid, r in routes.items() if "functionsSubnet" in lid]
    assert len(private_default) == 2
    assert all("NatGatewayId" in r["Properties"] for r in private_default)
    assert not [lid for lid in routes if "dataSubnet" in lid], "data subnets have no route out"
    [flow_log] = synth.of_type("AWS::EC2::FlowLog").values()
    assert flow_log["Properties"]["TrafficType"] == "ALL"
    assert flow_log["Properties"]["ResourceType"] == "VPC"


# Migrations ----------------------------------------------------------------------------------
def test_migrations_run_as_a_custom_resource_after_the_database_and_proxy(synth: Synth) -> None:
    [schema_id] = synth.of_type("Custom::CollabSchema")
    schema = synth.resources[schema_id]
    assert schema["Properties"]["MigrationsHash"] == migrations_hash()
    provider = synth.stack.migrations.provider
    framework = synth.logical_id(provider.node.find_child("framework-onEvent"))
    assert schema["Properties"]["ServiceToken"] == {"Fn::GetAtt": [framework, "Arn"]}
    data = synth.stack.data
    for needed in (data.database, data.proxy, data.proxy.node.find_child("ProxyTargetGroup")):
        assert synth.logical_id(needed) in schema["DependsOn"]
    framework_env = synth.resources[framework]["Properties"]["Environment"]["Variables"]
    assert framework_env["USER_ON_EVENT_FUNCTION_ARN"] == {
        "Fn::GetAtt": [function_id(synth, "migrate"), "Arn"]
    }


def test_migrations_hash_changes_with_the_sql() -> None:
    assert re.fullmatch(r"[0-9a-f]{64}", migrations_hash())


# Observability -------------------------------------------------------------------------------
def alarms(synth: Synth) -> list[dict[str, Any]]:
    return [a["Properties"] for a in synth.of_type("AWS::CloudWatch::Alarm").values()]


@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
def test_every_function_has_error_and_throttle_alarms(synth: Synth, metric: str) -> None:
    watched = {
        a["Dimensions"][0]["Value"]["Ref"]
        for a in alarms(synth)
        if a["Namespace"] == "AWS/Lambda" and a["MetricName"] == metric
    }
    assert watched == {function_id(synth, name) for name in FUNCTIONS}


def test_api_redis_and_postgres_alarms(synth: Synth) -> None:
    by_namespace: dict[str, set[str]] = {}
    for alarm in alarms(synth):
        by_namespace.setdefault(alarm["Namespace"], set()).add(alarm["MetricName"])
    assert {"IntegrationError", "ExecutionError", "IntegrationLatency", "5xx"} <= by_namespace[
        "AWS/ApiGateway"
    ]
    assert by_namespace["AWS/ElastiCache"] == {
        "CPUUtilization",
        "EngineCPUUtilization",
        "DatabaseMemoryUsagePercentage",
        "Evictions",
        "CurrConnections",
    }
    assert by_namespace["AWS/RDS"] == {"CPUUtilization", "FreeStorageSpace", "DatabaseConnections"}
    redis_nodes = {json.dumps(a["Dimensions"]) for a in alarms(synth) if a["Namespace"] == "AWS/ElastiCache"}
    assert len(redis_nodes) == 2, "one set of Redis alarms per node"


def test_posts_not_delivered_are_alarmed(synth: Synth) -> None:
    [alarm] = [a for a in alarms(synth) if a.get("MetricName") == "PostsNotDelivered"]
    assert alarm["Namespace"] == "Collab" and alarm["Statistic"] == "Sum"
    assert alarm["Dimensions"] == [{"Name": "service", "Value": "collab"}]


def test_alarms_notify_the_encrypted_topic(synth: Synth) -> None:
    [topic_id] = synth.of_type("AWS::SNS::Topic")
    topic = synth.resources[topic_id]["Properties"]
    assert "KmsMasterKeyId" in topic
    for alarm in alarms(synth):
        assert alarm["AlarmActions"] == [ref(topic_id)]
        assert alarm["TreatMissingData"] == "notBreaching"
    key = synth.resources[topic["KmsMasterKeyId"]["Fn::GetAtt"][0]]["Properties"]
    assert key["EnableKeyRotation"] is True
    principals = [s.get("Principal", {}).get("Service") for s in key["KeyPolicy"]["Statement"]]
    assert "cloudwatch.amazonaws.com" in principals


def test_dashboard_and_outputs(synth: Synth) -> None:
    assert len(synth.of_type("AWS::CloudWatch::Dashboard")) == 1
    outputs = synth.template["Outputs"]
    ws_api = synth.logical_id(synth.stack.realtime.api)
    http_api = synth.logical_id(synth.stack.http.api)
    assert outputs["WebSocketUrl"]["Value"] == {
        "Fn::Join": ["", ["wss://", ref(ws_api), ".execute-api.us-east-1.", ref("AWS::URLSuffix"), "/prod"]]
    }
    assert outputs["HttpApiUrl"]["Value"] == {
        "Fn::Join": ["", ["https://", ref(http_api), ".execute-api.us-east-1.", ref("AWS::URLSuffix"), "/"]]
    }
    Template.from_json(synth.template).has_output("AlarmTopicArn", {"Value": Match.any_value()})


# Checkov's gaps, fixed (issue 19) ------------------------------------------------------------------
def stack_key_id(synth: Synth) -> str:
    return synth.logical_id(synth.stack.key)


def key_arn(synth: Synth) -> dict[str, Any]:
    return {"Fn::GetAtt": [stack_key_id(synth), "Arn"]}


def test_one_rotated_key_encrypts_logs_secrets_environments_and_dead_letters(synth: Synth) -> None:
    key = synth.resources[stack_key_id(synth)]["Properties"]
    assert key["EnableKeyRotation"] is True
    [logs_statement] = [
        s for s in key["KeyPolicy"]["Statement"] if s.get("Sid") == "CloudWatchLogsOfThisAccount"
    ]
    assert logs_statement["Principal"] == {"Service": "logs.us-east-1.amazonaws.com"}
    condition = json.dumps(logs_statement["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"])
    assert ":logs:us-east-1:123456789012:log-group:*" in condition
    log_groups = synth.of_type("AWS::Logs::LogGroup")
    assert len(log_groups) == 13  # one per function (9), the APIs' access logs, flow logs, ...
    for lid, group in log_groups.items():
        assert group["Properties"]["KmsKeyId"] == key_arn(synth), lid
    for lid, secret in synth.of_type("AWS::SecretsManager::Secret").items():
        assert secret["Properties"]["KmsKeyId"] == key_arn(synth), lid
    for lid, fn in synth.of_type("AWS::Lambda::Function").items():
        assert fn["Properties"]["KmsKeyArn"] == key_arn(synth), lid
    for lid, queue in synth.of_type("AWS::SQS::Queue").items():
        assert queue["Properties"]["KmsMasterKeyId"] == key_arn(synth), lid


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_reading_a_secret_needs_the_key_through_secrets_manager_only(synth: Synth, name: str) -> None:
    decrypts = [s for s in statements_of_role(synth, name) if "kms:Decrypt" in as_list(s["Action"])]
    if name == "webhooks":  # the SQS event source reads the encrypted queue: CDK's consumer grant
        decrypts = [s for s in decrypts if "Condition" in s]
    via = {s["Condition"]["StringEquals"]["kms:ViaService"] for s in decrypts}
    sends = {"sweeper", "webhooks", "api", "message", "fanout"}  # dead-letter queues, the webhook queue
    assert via == {"secretsmanager.us-east-1.amazonaws.com"} | (
        {"sqs.us-east-1.amazonaws.com"} if name in sends else set()
    )
    assert all(s["Resource"] == key_arn(synth) for s in decrypts)


RESERVED = {
    "connect": 100,
    "disconnect": 100,
    "heartbeat": 20,
    "message": 120,
    "api": 40,
    "sweeper": 1,
    "migrate": 1,
    "webhooks": 5,
    "fanout": 40,
}


def test_reserved_concurrency_follows_the_stage_throttles(synth: Synth) -> None:
    """500 WebSocket / 200 HTTP requests/s x expected duration x headroom 4 (infra/functions.py)."""
    for name in FUNCTIONS:
        assert function_props(synth, name)["ReservedConcurrentExecutions"] == RESERVED[name], name
        assert reserved_concurrency(name, synth.stack.config) == RESERVED[name]
    framework = synth.logical_id(synth.stack.migrations.provider.node.find_child("framework-onEvent"))
    assert synth.resources[framework]["Properties"]["ReservedConcurrentExecutions"] == 1
    total = sum(
        f["Properties"]["ReservedConcurrentExecutions"]
        for f in synth.of_type("AWS::Lambda::Function").values()
    )
    assert total == synth.stack.functions.reserved_total == 428
    assert total <= 1000 - 100, "Lambda keeps 100 of the default quota unreserved"


def test_no_reservation_when_turned_off(variant: Synth) -> None:
    for lid, fn in variant.of_type("AWS::Lambda::Function").items():
        assert "ReservedConcurrentExecutions" not in fn["Properties"], lid


def test_asynchronously_invoked_functions_have_encrypted_alarmed_dead_letter_queues(synth: Synth) -> None:
    queues = synth.of_type("AWS::SQS::Queue")
    framework = synth.logical_id(synth.stack.migrations.provider.node.find_child("framework-onEvent"))
    with_dlq = {
        lid: fn["Properties"]["DeadLetterConfig"]["TargetArn"]["Fn::GetAtt"][0]
        for lid, fn in synth.of_type("AWS::Lambda::Function").items()
        if "DeadLetterConfig" in fn["Properties"]
    }
    assert set(with_dlq) == {
        function_id(synth, "sweeper"), function_id(synth, "webhooks"), function_id(synth, "fanout"), framework
    }  # fmt: skip
    deliveries = synth.logical_id(synth.stack.webhooks.queue)  # the webhooks' FIFO queue itself
    dead_letters = set(queues) - {deliveries}
    assert set(with_dlq.values()) == dead_letters - {synth.logical_id(synth.stack.webhooks.dead_letters)}
    for lid in dead_letters:
        assert queues[lid]["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    depth = {
        a["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for a in alarms(synth)
        if a["Namespace"] == "AWS/SQS" and a["MetricName"] == "ApproximateNumberOfMessagesVisible"
    }
    assert depth == dead_letters
    # SQS refuses plain HTTP to the queues
    policies = json.dumps(list(synth.of_type("AWS::SQS::QueuePolicy").values()))
    assert policies.count('"aws:SecureTransport": "false"') == len(queues)


def test_sweeper_events_are_not_retried_but_kept(synth: Synth) -> None:
    sweeper = function_id(synth, "sweeper")
    [config] = [
        c
        for c in synth.of_type("AWS::Lambda::EventInvokeConfig").values()
        if c["Properties"]["FunctionName"] == {"Ref": sweeper}
    ]
    assert config["Properties"]["MaximumRetryAttempts"] == 0
    assert config["Properties"]["MaximumEventAgeInSeconds"] == 60


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_network_interface_writes_name_their_resources(synth: Synth, name: str) -> None:
    statements = statements_of_role(synth, name)
    [create] = [s for s in statements if "ec2:CreateNetworkInterface" in as_list(s["Action"])]
    text = json.dumps(create["Resource"])
    assert ":network-interface/*" in text
    assert synth.logical_id(synth.stack.functions.security_groups[name]) in text
    assert text.count(":subnet/") == 2 and "functionsSubnet" in text
    for action in (
        "ec2:DeleteNetworkInterface",
        "ec2:AssignPrivateIpAddresses",
        "ec2:UnassignPrivateIpAddresses",
    ):
        [resource] = resources_for(statements, action)
        assert json.dumps(resource).endswith(':ec2:us-east-1:123456789012:network-interface/*"]]}')


def test_redis_never_evicts_and_functions_know_the_allowed_origins(synth: Synth) -> None:
    """Issue 13: with volatile-lru (ElastiCache's default), a full Redis evicts exactly the keys with
    an expiry (used tickets, rate windows, idempotency records): noeviction refuses writes instead."""
    groups = list(synth.of_type("AWS::ElastiCache::ParameterGroup").values())
    assert [g["Properties"]["Properties"] for g in groups] == [{"maxmemory-policy": "noeviction"}]
    (redis,) = synth.of_type("AWS::ElastiCache::ReplicationGroup").values()
    assert "CacheParameterGroupName" in redis["Properties"]
    for fn in synth.of_type("AWS::Lambda::Function").values():
        env = fn["Properties"].get("Environment", {}).get("Variables", {})
        if "JWT_ISSUER" in env:
            assert env["CORS_ORIGINS"] == "https://board.example.com,http://localhost:8080"
