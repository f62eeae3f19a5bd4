"""Lambda's SQS event source, for ``collab dev`` and the tests: read the webhook queue (moto's SQS in
server mode), call ``functions/webhooks/handler.py`` with the batch as Lambda would, and delete the
messages it did not report as failed (``batchItemFailures``). Failed ones come back after the
queue's visibility timeout, as in AWS. :func:`start_local_queue` creates the FIFO queue and its
dead-letter queue in a moto server, as ``infra/webhooks.py`` does in AWS."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from collab.adapters.sqs.queue import WebhookQueue

Invoke = Callable[[dict[str, Any]], dict[str, Any]]


def poll_once(queue: WebhookQueue, invoke: Invoke, *, wait_s: int = 0) -> int:
    """One receive and one invocation; the number of messages handled."""
    records = queue.receive(max_messages=10, wait_s=wait_s)
    if not records:
        return 0
    answer = invoke({"Records": records}) or {}
    failed = {f["itemIdentifier"] for f in answer.get("batchItemFailures", [])}
    for record in records:
        if record["messageId"] not in failed:
            queue.delete(record["receiptHandle"])
    return len(records)


def drain(queue: WebhookQueue, invoke: Invoke, *, rounds: int = 100) -> int:
    """Poll until the queue answers empty (bounded); the number of messages handled."""
    total = 0
    for _ in range(rounds):
        n = poll_once(queue, invoke)
        if n == 0:
            break
        total += n
    return total


def start_local_queue() -> tuple[Any, str]:
    """moto's server on a free loopback port with the webhook FIFO queue and its dead-letter queue
    (redrive after 5 receives); returns (server, queue URL). Stop the server with ``.stop()``."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
    dlq = sqs.create_queue(QueueName="collab-webhooks-dlq.fifo", Attributes={"FifoQueue": "true"})
    arn = sqs.get_queue_attributes(QueueUrl=dlq["QueueUrl"], AttributeNames=["QueueArn"])["Attributes"]
    queue = sqs.create_queue(
        QueueName="collab-webhooks.fifo",
        Attributes={
            "FifoQueue": "true",
            "VisibilityTimeout": "30",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn["QueueArn"], "maxReceiveCount": "5"}),
        },
    )
    return server, str(queue["QueueUrl"])


class Poller(threading.Thread):
    """Polls in the background until :meth:`stop` (collab dev), and sends the minute tick that
    EventBridge sends in AWS (``tick``: the scheduled event)."""

    def __init__(self, queue: WebhookQueue, invoke: Invoke, *, tick_s: float = 60.0) -> None:
        super().__init__(name="webhook-poller", daemon=True)
        self.queue, self.invoke, self.tick_s = queue, invoke, tick_s
        self._stop_event = threading.Event()

    def run(self) -> None:
        next_tick = time.monotonic() + self.tick_s
        while not self._stop_event.is_set():
            try:
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + self.tick_s
                    self.invoke({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}})
                poll_once(self.queue, self.invoke, wait_s=1)
            except Exception:  # noqa: BLE001 - a dev server keeps polling; the handler logged it
                self._stop_event.wait(1)

    def stop(self) -> None:
        self._stop_event.set()
