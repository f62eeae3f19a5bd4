"""The stack's customer-managed KMS key: logs, secrets, Lambda environments, dead-letter queues.

One key, rotated yearly by KMS, costs $1 a month plus its requests, and those stay few: the functions
read each secret and decrypt their environment once per container, CloudWatch Logs and SQS reuse
data keys. A key per kind of data would add a dollar each and separate nothing that IAM does not
already separate (a function may read only the secrets its row of ``FUNCTIONS`` names, whatever
key encrypts them).

The key policy is CDK's default (the account's IAM policies decide, so the grants the stack writes
are what counts) plus one statement for CloudWatch Logs, which encrypts the log groups with the key
itself and may use it only for log groups of this account and region. The alarm topic keeps its
own key (infra/observability.py): its key policy admits CloudWatch alarms, which have no business
with this one.

The key is retained when the stack is deleted (KMS's default): anything still encrypted with it,
such as a secret in its recovery window, stays readable. Schedule its deletion by hand.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct


def stack_key(scope: Construct, construct_id: str = "Key") -> kms.Key:
    stack = Stack.of(scope)
    key = kms.Key(
        scope,
        construct_id,
        description="Collab: log groups, secrets, Lambda environments, dead-letter queues",
        enable_key_rotation=True,
    )
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="CloudWatchLogsOfThisAccount",
            principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
            actions=[
                "kms:Encrypt*",
                "kms:Decrypt*",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:Describe*",
            ],
            resources=["*"],
            conditions={
                "ArnLike": {
                    "kms:EncryptionContext:aws:logs:arn": stack.format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name="*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                }
            },
        )
    )
    return key
