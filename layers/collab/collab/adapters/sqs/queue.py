"""The webhook delivery queue: SQS FIFO, one message group per workspace.

In AWS, Lambda's SQS event source reads it and calls ``functions/webhooks``; under ``collab dev``
the same queue API is served by moto in server mode and :func:`collab_dev.webhook_poller` plays the
event source. Messages are small ("workspace W has news up to seq S"): the events themselves are
read from the activity log when they are delivered, so a message can be lost, repeated or redriven
from the dead-letter queue without losing or reordering an event (docs/operations.md).
"""

from __future__ import annotations

import json
import threading
from typing import Any

from collab.errors import Unavailable


class WebhookQueue:
    def __init__(self, url: str, *, endpoint_url: str | None = None, client: Any = None) -> None:
        self.url = url
        self._endpoint_url = endpoint_url
        self._client = client
        self._lock = threading.Lock()
        self.sent = 0

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import boto3  # only a route that enqueues pays for boto3

                    self._client = boto3.client("sqs", endpoint_url=self._endpoint_url)
        return self._client

    def send(self, group: str, body: dict[str, Any], dedup: str) -> None:
        """One message in ``group`` (FIFO order within it); ``dedup`` drops repeats for 5 minutes."""
        try:
            self.client.send_message(
                QueueUrl=self.url,
                MessageBody=json.dumps(body, separators=(",", ":")),
                MessageGroupId=group,
                MessageDeduplicationId=dedup[:128],
            )
        except Exception as exc:
            raise Unavailable("queue unavailable") from exc
        self.sent += 1

    def receive(self, *, max_messages: int = 10, wait_s: int = 1) -> list[dict[str, Any]]:
        """Messages as Lambda's SQS event records (``messageId``, ``receiptHandle``, ``body``, ...)."""
        out = self.client.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=max_messages,
            WaitTimeSeconds=wait_s,
            AttributeNames=["All"],
        )
        return [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:" + self.url.rsplit("/", 1)[-1],
            }
            for m in out.get("Messages", [])
        ]

    def delete(self, receipt_handle: str) -> None:
        self.client.delete_message(QueueUrl=self.url, ReceiptHandle=receipt_handle)
