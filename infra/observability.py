"""Alarms, the alarm topic and one dashboard.

Thresholds are chosen for the stated load of docs/deploy.md (about 1,000 connections): any Lambda
error or throttle is worth a look at that size; latency and resource alarms leave headroom before
users notice. All alarms treat missing data as fine, because quiet hours produce no datapoints.
"""

from __future__ import annotations

from aws_cdk import Duration, Fn
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import DeployConfig
from infra.data import Data

FIVE_MINUTES = Duration.minutes(5)


class Observability(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: dict[str, lambda_.Function],
        dead_letter_queues: dict[str, sqs.IQueue],
        websocket_api: apigwv2.WebSocketApi,
        websocket_stage: apigwv2.WebSocketStage,
        http_api: apigwv2.HttpApi,
        http_stage: apigwv2.HttpStage,
        data: Data,
        config: DeployConfig,
    ) -> None:
        super().__init__(scope, construct_id)
        # CloudWatch cannot publish to a topic encrypted with the AWS-managed aws/sns key, so the
        # topic gets its own key that lets the CloudWatch service use it.
        key = kms.Key(self, "AlarmTopicKey", description="Collab alarm topic", enable_key_rotation=True)
        key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
            )
        )
        self.topic = sns.Topic(
            self, "AlarmTopic", display_name="Collab alarms", master_key=key, enforce_ssl=True
        )
        if config.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))
        self._action = cw_actions.SnsAction(self.topic)
        self.alarms: list[cw.Alarm] = []

        for name, fn in functions.items():
            self._alarm(
                f"{name}-errors",
                fn.metric_errors(period=FIVE_MINUTES, statistic="Sum"),
                1,
                f"The {name} function raised errors",
            )
            self._alarm(
                f"{name}-throttles",
                fn.metric_throttles(period=FIVE_MINUTES, statistic="Sum"),
                1,
                f"The {name} function was throttled (account or reserved concurrency)",
            )

        # An event in a dead-letter queue is an asynchronous invocation that failed for good: a missed
        # sweep, or a deploy-time migration event the provider never answered. Any is worth a look.
        for name, queue in dead_letter_queues.items():
            self._alarm(
                f"{name}-dead-letters",
                queue.metric_approximate_number_of_messages_visible(period=FIVE_MINUTES, statistic="Maximum"),
                1,
                f"Failed asynchronous invocations of {name} in its dead-letter queue",
            )

        ws = {"ApiId": websocket_api.api_id, "Stage": websocket_stage.stage_name}
        ws_integration_errors = _metric("AWS/ApiGateway", "IntegrationError", ws, "Sum")
        ws_execution_errors = _metric("AWS/ApiGateway", "ExecutionError", ws, "Sum")
        ws_latency = _metric("AWS/ApiGateway", "IntegrationLatency", ws, "p99")
        # A handler error surfaces as IntegrationError; ExecutionError is API Gateway's own 5xx.
        self._alarm(
            "websocket-integration-errors",
            ws_integration_errors,
            5,
            "WebSocket routes returned integration errors",
        )
        self._alarm("websocket-5xx", ws_execution_errors, 5, "WebSocket API execution errors (5xx)")
        # Edits reach peers within a second (contract 3.5); p99 above 1 s eats that budget.
        self._alarm(
            "websocket-latency-p99",
            ws_latency,
            1000,
            "WebSocket integration latency p99 above 1 s",
            periods=3,
        )
        http_5xx = http_api.metric_server_error(period=FIVE_MINUTES, statistic="Sum")
        self._alarm("http-5xx", http_5xx, 5, "HTTP API returned 5xx")
        http_latency = http_api.metric_integration_latency(period=FIVE_MINUTES, statistic="p99")
        self._alarm(
            "http-latency-p99", http_latency, 2000, "HTTP API integration latency p99 above 2 s", periods=3
        )

        # Posts that were not delivered and not found gone (403, 5xx after retries, resets, the
        # invocation's deadline): peers miss events until their next sync. The functions emit the
        # count (collab.adapters.apigw.management); a few a day are throttles, a burst is an outage
        # of the Management API or a missing ManageConnections grant.
        self._alarm(
            "posts-not-delivered",
            _metric("Collab", "PostsNotDelivered", {"service": "collab"}, "Sum"),
            10,
            "Management API posts not delivered (10+ in 5 minutes)",
        )

        # ElastiCache reports per node: member clusters are named <replication group id>-00N.
        for index in range(1, data.redis_node_count + 1):
            node = Fn.join("", [data.redis.ref, f"-{index:03d}"])
            dims = {"CacheClusterId": node}
            label = f"redis-{index:03d}"
            self._alarm(
                f"{label}-cpu",
                _metric("AWS/ElastiCache", "CPUUtilization", dims),
                80,
                "Redis node host CPU above 80%",
                periods=3,
            )
            # Redis is single-threaded: the engine thread saturates long before host CPU does.
            self._alarm(
                f"{label}-engine-cpu",
                _metric("AWS/ElastiCache", "EngineCPUUtilization", dims),
                70,
                "Redis engine thread above 70%",
                periods=3,
            )
            self._alarm(
                f"{label}-memory",
                _metric("AWS/ElastiCache", "DatabaseMemoryUsagePercentage", dims),
                80,
                "Redis memory above 80% of maxmemory",
                periods=3,
            )
            # Evictions drop connection and presence keys: users would vanish. Any is an alarm.
            self._alarm(
                f"{label}-evictions",
                _metric("AWS/ElastiCache", "Evictions", dims, "Sum"),
                1,
                "Redis evicted keys",
            )
            # Only functions connect to Redis; thousands of connections mean containers leak them.
            self._alarm(
                f"{label}-connections",
                _metric("AWS/ElastiCache", "CurrConnections", dims, "Maximum"),
                2000,
                "Redis client connections above 2000",
                periods=3,
            )

        db = data.database
        self._alarm(
            "postgres-cpu",
            db.metric_cpu_utilization(period=FIVE_MINUTES),
            80,
            "Postgres CPU above 80%",
            periods=3,
        )
        free_storage = db.metric_free_storage_space(period=FIVE_MINUTES, statistic="Minimum")
        self._alarm(
            "postgres-free-storage",
            free_storage,
            2 * 1024**3,
            "Postgres free storage below 2 GiB",
            comparison=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
        )
        # db.t4g.micro allows about 80 connections (max_connections scales with memory); the proxy
        # keeps 90% for itself, so sustained use above 60 means the proxy is near its ceiling.
        connections = db.metric_database_connections(period=FIVE_MINUTES, statistic="Maximum")
        self._alarm("postgres-connections", connections, 60, "Postgres connections above 60", periods=3)

        self.dashboard = self._dashboard(functions, ws, http_api, data)

    def _alarm(
        self,
        name: str,
        metric: cw.IMetric,
        threshold: float,
        description: str,
        *,
        periods: int = 1,
        comparison: cw.ComparisonOperator = cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    ) -> cw.Alarm:
        alarm = cw.Alarm(
            self,
            "".join(part.capitalize() for part in name.split("-")) + "Alarm",
            metric=metric,
            threshold=threshold,
            evaluation_periods=periods,
            datapoints_to_alarm=periods,
            comparison_operator=comparison,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description=f"Collab: {description}",
        )
        alarm.add_alarm_action(self._action)
        alarm.add_ok_action(self._action)
        self.alarms.append(alarm)
        return alarm

    def _dashboard(
        self,
        functions: dict[str, lambda_.Function],
        ws: dict[str, str],
        http_api: apigwv2.HttpApi,
        data: Data,
    ) -> cw.Dashboard:
        dashboard = cw.Dashboard(self, "Dashboard", default_interval=Duration.hours(3))
        primary = {"CacheClusterId": Fn.join("", [data.redis.ref, "-001"])}
        dashboard.add_widgets(
            cw.GraphWidget(
                title="WebSocket traffic",
                left=[
                    _metric("AWS/ApiGateway", "ConnectCount", ws, "Sum"),
                    _metric("AWS/ApiGateway", "MessageCount", ws, "Sum"),
                ],
                right=[
                    _metric("AWS/ApiGateway", "IntegrationError", ws, "Sum"),
                    _metric("AWS/ApiGateway", "ClientError", ws, "Sum"),
                ],
                width=12,
            ),
            cw.GraphWidget(
                title="Latency p99 (ms)",
                left=[
                    _metric("AWS/ApiGateway", "IntegrationLatency", ws, "p99"),
                    http_api.metric_integration_latency(statistic="p99", period=FIVE_MINUTES),
                ],
                width=12,
            ),
        )
        dashboard.add_widgets(
            cw.GraphWidget(
                title="Lambda errors",
                left=[fn.metric_errors(period=FIVE_MINUTES, label=name) for name, fn in functions.items()],
                width=8,
            ),
            cw.GraphWidget(
                title="Lambda duration p99 (ms)",
                left=[
                    fn.metric_duration(period=FIVE_MINUTES, statistic="p99", label=name)
                    for name, fn in functions.items()
                ],
                width=8,
            ),
            cw.GraphWidget(
                title="Lambda concurrency",
                left=[
                    fn.metric("ConcurrentExecutions", period=FIVE_MINUTES, statistic="Maximum", label=name)
                    for name, fn in functions.items()
                ],
                width=8,
            ),
        )
        dashboard.add_widgets(
            cw.GraphWidget(
                title="Redis (primary at creation)",
                left=[
                    _metric("AWS/ElastiCache", "EngineCPUUtilization", primary),
                    _metric("AWS/ElastiCache", "DatabaseMemoryUsagePercentage", primary),
                ],
                right=[_metric("AWS/ElastiCache", "CurrConnections", primary, "Maximum")],
                width=12,
            ),
            cw.GraphWidget(
                title="Postgres",
                left=[data.database.metric_cpu_utilization(period=FIVE_MINUTES)],
                right=[data.database.metric_database_connections(period=FIVE_MINUTES)],
                width=12,
            ),
        )
        return dashboard


def _metric(namespace: str, name: str, dimensions: dict[str, str], statistic: str = "Average") -> cw.Metric:
    return cw.Metric(
        namespace=namespace,
        metric_name=name,
        dimensions_map=dimensions,
        statistic=statistic,
        period=FIVE_MINUTES,
    )
