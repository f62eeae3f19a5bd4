"""Webhook delivery: an SQS FIFO queue (one message group per workspace) with a dead-letter queue,
the webhooks function reading it, and a minute schedule for retries (docs/operations.md).

Messages only say "workspace W has news"; the events are read from the activity log when they are
sent, so a message that ends up in the dead-letter queue loses nothing: the minute tick catches the
endpoint up anyway, and a redrive (``aws sqs start-message-move-task``) is always safe.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.functions import FUNCTIONS, FunctionFactory, grant_send

# Six times the function's timeout: AWS's advice for a queue read by Lambda, so a message is not
# handed to a second worker while the first still runs it.
VISIBILITY = Duration.seconds(6 * FUNCTIONS["webhooks"].timeout_s)
MAX_RECEIVES = 5  # a message that failed five times (the database was down) goes to the DLQ


class Webhooks(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: FunctionFactory,
        connections_endpoint: str,
        publishers: list[lambda_.Function],
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letters = sqs.Queue(
            self,
            "DeadLetters",
            fifo=True,
            retention_period=Duration.days(14),
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,  # the stack's key (infra/encryption.py)
            data_key_reuse=Duration.hours(24),
            enforce_ssl=True,
        )
        self.queue = sqs.Queue(
            self,
            "Deliveries",
            fifo=True,
            visibility_timeout=VISIBILITY,
            retention_period=Duration.days(4),
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,  # the stack's key (infra/encryption.py)
            data_key_reuse=Duration.hours(24),
            enforce_ssl=True,
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dead_letters, max_receive_count=MAX_RECEIVES),
        )
        env = {"CONNECTIONS_ENDPOINT": connections_endpoint, "WEBHOOK_QUEUE_URL": self.queue.queue_url}
        self.function = functions.create("webhooks", environment=env)
        self.function.add_event_source(
            sources.SqsEventSource(self.queue, batch_size=2, report_batch_item_failures=True)
        )
        # SendMessage, and the key's data keys through SQS (the queue is encrypted with the stack's key).
        grant_send(self.queue, key, self.function)  # continuations and the tick's catch-ups
        for fn in publishers:  # whoever commits workspace events wakes the worker
            fn.add_environment("WEBHOOK_QUEUE_URL", self.queue.queue_url)
            grant_send(self.queue, key, fn)
        self.function.configure_async_invoke(retry_attempts=0, max_event_age=Duration.minutes(1))
        self.schedule = events.Rule(
            self,
            "RetrySchedule",
            description="Webhook retries that are due, and endpoints behind their workspace's seq",
            schedule=events.Schedule.rate(Duration.minutes(1)),
            targets=[targets.LambdaFunction(self.function, retry_attempts=0)],
        )
