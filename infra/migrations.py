"""Schema migrations as part of the deploy: a custom resource that runs
``collab.adapters.postgres.migrate``.

The Provider framework owns the CloudFormation protocol (responding to the pre-signed URL, timeouts,
retries of the response), so ``functions/migrate/handler.py`` only returns a dict. The resource's
``MigrationsHash`` property changes whenever a file under ``collab/adapters/postgres/migrations``
does, which is what makes CloudFormation send an Update, and therefore a new run, on the deploy that ships it.
"""

from __future__ import annotations

import hashlib

from aws_cdk import CustomResource, RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources as cr
from constructs import Construct

from infra.data import Data
from infra.functions import PROVIDER_FRAMEWORK_RESERVED, FunctionFactory, dead_letter_queue
from infra.layers import COLLAB_SOURCE


def migrations_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted((COLLAB_SOURCE / "adapters" / "postgres" / "migrations").glob("*.sql")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


class SchemaMigrations(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, functions: FunctionFactory, data: Data
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = functions.create("migrate")
        self.provider = cr.Provider(
            self,
            "Provider",
            on_event_handler=self.function,
            log_group=logs.LogGroup(
                self,
                "ProviderLogs",
                retention=logs.RetentionDays.ONE_MONTH,
                removal_policy=RemovalPolicy.DESTROY,
                encryption_key=functions.key,
            ),
            provider_function_env_encryption=functions.key,
        )
        # CloudFormation invokes the framework function asynchronously: an event it cannot handle
        # (a crash before it answers, a throttle) lands in a dead-letter queue, alarmed on depth,
        # instead of vanishing while the deploy waits for its timeout.
        framework = self.provider.node.find_child("framework-onEvent")
        assert isinstance(framework, lambda_.Function)
        self.dead_letters = dead_letter_queue(self, "ProviderDeadLetters", functions.key, sender=framework)
        cfn = framework.node.default_child
        assert isinstance(cfn, lambda_.CfnFunction)
        cfn.dead_letter_config = lambda_.CfnFunction.DeadLetterConfigProperty(
            target_arn=self.dead_letters.queue_arn
        )
        if functions.reserved_total:
            cfn.reserved_concurrent_executions = PROVIDER_FRAMEWORK_RESERVED
        self.resource = CustomResource(
            self,
            "Schema",
            service_token=self.provider.service_token,
            resource_type="Custom::CollabSchema",
            properties={"MigrationsHash": migrations_hash()},
        )
        # Run only once Postgres, the proxy, its target registration and the ingress rule letting
        # this function in exist: the function connects through the proxy, which answers only
        # after the target group is in place.
        self.resource.node.add_dependency(data.database)
        self.resource.node.add_dependency(data.proxy)
        self.resource.node.add_dependency(data.proxy_security_group)
