"""Large fan-outs, split across concurrent invocations (issue 15: workspaces of up to 1,000).

One invocation posts about 30-40 messages per millisecond of wall time at best, in waves of 32
(``collab.adapters.apigw.management.CONCURRENCY``), each wave a round trip to API Gateway: 50 peers
are two waves, 500 would be sixteen, and every peer of a large workspace would wait for the slowest
wave. So above :data:`CHUNK` recipients, the invocation that made the event posts the first
:data:`CHUNK` itself and hands the rest, :data:`CHUNK` connections at a time, to the fan-out function
(``functions/fanout``) through asynchronous invocations (``InvocationType=Event``,
:mod:`collab.adapters.awslambda.invoker`), all queued at once, so every chunk is posted side by
side, as Lambda runs containers. Each chunk's invocation prunes the gone connections it found and
adds its outcomes to the delivery tracer's record of the event.

Without ``FANOUT_FUNCTION`` (tests, a stack without it) or when an invoke is refused, the chunk is
posted inline as before: nothing is lost, only slower. A chunk's event carries the frame itself
(base64: at most 128 KB -> 171 KB) and its connection ids, well within the 256 KB an asynchronous
invocation was allowed before 2025 (1 MB since).

Imports: Redis and the Management API only (the fan-out function never loads psycopg).
"""

from __future__ import annotations

import base64
import time
from typing import TYPE_CHECKING, Any

from collab.adapters.awslambda.invoker import PayloadTooLarge
from collab.observability import MetricUnit, logger, metrics

if TYPE_CHECKING:
    from collab.adapters.apigw.management import ManagementApi, Receipt
    from collab.runtime import Runtime

CHUNK = 100  # posts per invocation: about three waves of 32, ~10 ms of CPU
KIND = "collab.fanout"  # the chunk event's kind (the fan-out function refuses anything else)


def deliver(
    rt: Runtime,
    gateway: ManagementApi,
    workspace_id: str,
    targets: list[str],
    payload: bytes,
    *,
    trace: dict[str, Any] | None = None,
) -> tuple[Receipt, list[str]]:
    """Post ``payload`` to every target: the first :data:`CHUNK` here, the rest through the fan-out
    function when there are more. Returns the receipt of the posts made here and the connections
    handed to fan-out invocations (their outcomes reach the tracer from there). ``trace`` (seq, type,
    timestamp of a workspace event) lets each chunk add its outcomes to the event's trace."""
    invoker = rt.invoker
    if len(targets) <= CHUNK or invoker is None:
        return gateway.broadcast(targets, payload), []
    inline, rest = list(targets[:CHUNK]), targets[CHUNK:]
    chunks = [rest[i : i + CHUNK] for i in range(0, len(rest), CHUNK)]
    body = base64.b64encode(payload).decode()
    events = [
        {"kind": KIND, "workspace_id": workspace_id, "endpoint": gateway.endpoint, "connections": chunk,
         "payload": body, "trace": trace}
        for chunk in chunks
    ]  # fmt: skip
    try:
        accepted = invoker.invoke_async(events)
    except (PayloadTooLarge, RuntimeError, OSError) as exc:
        logger.warning("fan-out invocations not made; posting inline", extra={"reason": str(exc)})
        accepted = [False] * len(chunks)
    dispatched: list[str] = []
    for chunk, ok in zip(chunks, accepted, strict=True):
        (dispatched if ok else inline).extend(chunk)
    if len(dispatched) < len(rest):
        refused = len(rest) - len(dispatched)
        metrics.add_metric(name="FanoutInvokeRefused", unit=MetricUnit.Count, value=refused)
    metrics.add_metric(name="FanoutInvocations", unit=MetricUnit.Count, value=sum(accepted))
    return gateway.broadcast(inline, payload), dispatched


def handle(rt: Runtime, event: dict[str, Any], *, memory_mb: int) -> dict[str, int]:
    """The fan-out function: post one chunk, prune its gone connections, trace its outcomes, and
    meter the invocation to the workspace (its posts were counted by the invocation that made the
    event)."""
    if event.get("kind") != KIND:
        raise ValueError("not a fan-out chunk")
    started = time.perf_counter()
    wid = str(event["workspace_id"])
    gateway = rt.gateway_for(event.get("endpoint"))
    cids = [str(c) for c in event["connections"]][:CHUNK]
    receipt = gateway.broadcast(cids, base64.b64decode(event["payload"]))
    trace = event.get("trace")
    if trace:
        from collab.adapters.redis import trace as traces

        try:
            traces.record(rt.store.r, wid, int(trace["seq"]), str(trace["type"]), str(trace["timestamp"]),
                          outcomes(receipt))  # fmt: skip
        except Exception:  # noqa: BLE001 - tracing is an aid; the posts were made
            logger.warning("tracing a fan-out chunk failed", extra={"workspace_id": wid})
    if receipt.gone:
        from collab.domain import presence

        presence.settle(rt, gateway, wid, rt.store.remove_connections(wid, receipt.gone))
    from collab.domain import usage

    ms = (time.perf_counter() - started) * 1000
    usage.add(rt, wid, invocations=1, handler_ms=ms, gb_ms=ms * memory_mb / 1024)
    return receipt.counts()


def outcomes(receipt: Receipt) -> dict[str, str]:
    """connection id -> outcome, as the delivery tracer names them."""
    out = dict.fromkeys(receipt.delivered, "delivered")
    out.update(dict.fromkeys(receipt.gone, "gone"))
    out.update(dict.fromkeys(receipt.failed, "failed"))
    out.update(dict.fromkeys(receipt.throttled, "throttled"))
    return out
