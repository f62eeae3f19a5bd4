"""``$default``: every client frame but heartbeat - ``sync``, ``presence.update``, ``task.*``,
``notification.read``. The answer (``ack``, ``sync`` or ``error``) is the route response.

A mutating frame (``task.update``, say) goes, in this module's order (docs/architecture.md follows
it file by file):

1. :func:`handle` decodes and validates it (:mod:`collab.protocol.client_frames`); bad input is
   answered and changes nothing;
2. one Redis script counts it against the user's rate limit and claims its ``request_id``
   (:meth:`collab.adapters.redis.store.Store.begin`); a repeat gets the first answer;
3. :func:`_mutate` runs the one Postgres transaction (:mod:`collab.domain.tasks`);
4. then publishes (:func:`collab.domain.events.publish`): the answer under the ``request_id``, the
   event in the workspace's history, the fan-out to peers;
5. and returns the ``ack`` with the committed task and seq.

Heavy imports (pydantic models, psycopg through the domain) are paid at init: Lambda runs the init
phase with its full CPU, and the first frame of every connection (``sync``) needs them anyway.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from collab.deadline import remaining
from collab.domain import admission, events, ledger, notifications, presence, tasks, undo
from collab.domain.sync import sync
from collab.errors import CollabError, Forbidden, RateLimited, Unauthorized, ValidationError
from collab.observability import MetricUnit, logger, metrics
from collab.protocol import client_frames
from collab.protocol.wire import dumps
from collab.ws import heartbeat
from collab.ws.context import (
    WINDOW_MS,
    ack,
    ack_error,
    connection_id,
    connection_info,
    endpoint,
    error,
    gone,
    reply,
)

if TYPE_CHECKING:
    from collab.adapters.apigw.management import ManagementApi
    from collab.adapters.redis.store import ConnInfo
    from collab.runtime import Runtime

PENDING_WAIT_S = 5.0  # a duplicate waits this long for the first attempt's answer
WARM_BUDGET_S = 1.0  # what a container's init may spend opening Management API connections


def prepare(rt: Runtime) -> int:
    """At a container's init: open the Management API connections a fan-out keeps in flight, so that
    the container's first fan-out spends no round trips on TCP and TLS handshakes, and none of its
    CPU (docs/performance.md, "Fan-out over TLS"). Only over https (API Gateway's endpoint; the
    local gateway's plain connections cost nothing to open). Returns how many are ready."""
    endpoint, n = rt.settings.connections_endpoint, rt.settings.fanout_warm_connections
    if not endpoint or not endpoint.startswith("https://") or n <= 0:
        return 0
    return rt.gateway_for(endpoint).warm(n, budget_s=WARM_BUDGET_S)


def handle(rt: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    cid = connection_id(event)
    gateway = rt.gateway_for(endpoint(event))
    try:
        info = connection_info(rt, cid)
    except CollabError as exc:  # Redis down: the frame cannot be placed; answered, the client retries
        return error(rt, exc)
    if info is None:
        return gone(rt, gateway, cid)
    if not info.admitted:  # its first frame: the ticket spent for good, the membership checked
        try:
            admitted = admission.admit(rt, info)
        except (Unauthorized, Forbidden) as exc:
            return _refuse_admission(rt, gateway, info, exc)
        except CollabError as exc:  # Postgres or Redis down: answered, the client retries
            return error(rt, exc)
        if admitted is None:
            return gone(rt, gateway, cid)
        info = admitted
    metrics.add_metric(name="Messages", unit=MetricUnit.Count, value=1)
    body = event.get("body")
    try:
        obj = client_frames.decode(body)
    except client_frames.BadFrame as exc:
        return _count(rt, gateway, info, None) or error(rt, exc, info)
    except CollabError as exc:  # payload_too_large
        return _count(rt, gateway, info, None) or _too_large(rt, info, body, exc)
    request_id = client_frames.request_id_of(obj)
    logger.set_correlation_id(f"{cid}/{request_id}" if request_id else cid)
    mutation = obj["action"] in client_frames.MUTATIONS
    try:
        msg = client_frames.parse(obj)
    except ValidationError as exc:
        answer = ack(rt, info, ack_error(request_id, exc)) if mutation else error(rt, exc, info)
        return _count(rt, gateway, info, request_id if mutation else None) or answer
    if msg.action == "heartbeat":  # only when a client's frame bypassed the heartbeat route
        # it reached $default: it counts against the frame budget, not the heartbeats' own
        return _count(rt, gateway, info, None) or heartbeat.handle(rt, event, budget=False)
    rid = str(msg.request_id) if mutation else None
    # v1.3: editing indicators have their own budget, so typing does not eat the frame budget
    editing = msg.action == "presence.update" and msg.carries_editing
    bucket, limit = ("ed", rt.settings.limits.editing_per_minute) if editing else ("rl", None)
    try:
        kind, value = rt.store.begin(
            info.user_id,
            bucket=bucket,
            limit=limit or rt.settings.limits.frames_per_minute,
            window_ms=WINDOW_MS,
            now_ms=rt.clock.now_ms(),
            request_id=rid,
        )
        if kind == "limited":
            return _over_budget(rt, gateway, info, rid, int(value), bucket=bucket)
    except CollabError as exc:
        return ack(rt, info, ack_error(rid, exc)) if mutation else error(rt, exc, info)
    if kind == "seen":
        return ack(rt, info, _await_answer(rt, info.user_id, rid, value))
    if rid is None:
        return _read_action(rt, gateway, info, msg)
    return _mutate(rt, gateway, info, msg, rid)


def _refuse_admission(
    rt: Runtime, gateway: ManagementApi, info: ConnInfo, exc: CollabError
) -> dict[str, Any]:
    """A replayed ticket or a user who is no longer a member: the connection is removed and closed
    before it has received or changed anything (never announced, it was never a fan-out target)."""
    cid = info.connection_id
    logger.info("connection refused at admission", extra={"connection_id": cid, "reason": exc.code})
    metrics.add_metric(name="ConnectRefused", unit=MetricUnit.Count, value=1)
    rt.connections.pop(cid, None)
    try:
        rt.store.remove_connections(info.workspace_id, [cid])
    except CollabError:
        pass  # the sweeper removes it once API Gateway has closed it
    gateway.delete(cid)
    return error(rt, exc)


def _count(rt: Runtime, gateway: ManagementApi, info: ConnInfo, rid: Any) -> dict[str, Any] | None:
    """Count a frame that will be refused anyway (not JSON, unknown action, bad fields, too large)
    against the user's budget: each is a Lambda invocation all the same. None when within budget
    (the caller answers the frame's own error), else the ``rate_limited`` answer. If Redis is down
    the frame's own error is answered: it changes nothing."""
    try:
        kind, value = rt.store.begin(
            info.user_id,
            bucket="rl",
            limit=rt.settings.limits.frames_per_minute,
            window_ms=WINDOW_MS,
            now_ms=rt.clock.now_ms(),
        )
    except CollabError:
        return None
    if kind != "limited":
        return None
    return _over_budget(rt, gateway, info, rid if isinstance(rid, str) else None, int(value))


def _over_budget(
    rt: Runtime, gateway: ManagementApi, info: ConnInfo, rid: str | None, retry_ms: int, *, bucket: str = "rl"
) -> dict[str, Any]:
    """Refuse a frame over the user's budget (``bucket``: ``rl`` frames, ``ed`` editing indicators)
    with ``rate_limited``; a client that keeps sending (``refusals_before_close`` refusals in one
    window) has its connection closed."""
    limits = rt.settings.limits
    if bucket == "ed":
        what = f"rate limit: {limits.editing_per_minute} editing updates per minute"
    else:
        what = f"rate limit: {limits.frames_per_minute} frames per minute"
    exc = RateLimited(what, retry_after_ms=retry_ms)
    metrics.add_metric(name="RateLimited", unit=MetricUnit.Count, value=1)
    try:
        refusals = rt.store.count_refusal(info.user_id, bucket, WINDOW_MS)
    except CollabError:
        refusals = 0
    if refusals > limits.refusals_before_close:
        logger.warning(
            "closing a connection that keeps sending over its budget", extra={"refusals": refusals}
        )
        rt.connections.pop(info.connection_id, None)
        try:
            presence.disconnect(rt, gateway, info)
        except CollabError:
            pass  # the sweeper removes it once API Gateway has closed it
        gateway.delete(info.connection_id)
    return ack(rt, info, ack_error(rid, exc)) if rid else error(rt, exc, info)


def _too_large(rt: Runtime, info: ConnInfo, body: Any, exc: CollabError) -> dict[str, Any]:
    try:
        obj = json.loads(body)
        rid = client_frames.request_id_of(obj) if isinstance(obj, dict) else None
    except (ValueError, TypeError, RecursionError):
        rid = None
    return ack(rt, info, ack_error(rid, exc)) if rid else error(rt, exc, info)


def _await_answer(rt: Runtime, uid: str, rid: str | None, value: str) -> dict[str, Any]:
    """A repeated request_id: the first attempt's answer, waiting for it while it is still running."""
    assert rid is not None
    left = remaining()  # never past the invocation's own end
    deadline = time.monotonic() + (PENDING_WAIT_S if left is None else max(0.0, min(PENDING_WAIT_S, left)))
    while value == "pending" and time.monotonic() < deadline:
        time.sleep(0.02)
        try:
            value = rt.store.request_answer(uid, rid) or "pending"
        except CollabError as exc:  # Redis down while waiting: this attempt is answered internal
            return ack_error(rid, exc)
    if value == "pending":
        return ack_error(rid, CollabError("the first attempt of this request is still running; retry"))
    answer: dict[str, Any] = json.loads(value)
    return answer


def _settle_claim(rt: Runtime, uid: str, rid: str, answer: str | None) -> None:
    """Record the answer under the request_id, or (None) free the claim for a retry. If Redis fails
    here, the frame's answer stands: an unanswered claim frees itself (``PENDING_TTL_S``)."""
    try:
        if answer is None:
            rt.store.abandon(uid, rid)
        else:
            rt.store.finish(uid, rid, answer)
    except CollabError as exc:
        logger.warning("request record not written", extra={"reason": exc.code})


def _read_action(rt: Runtime, gateway: ManagementApi, info: ConnInfo, msg: Any) -> dict[str, Any]:
    try:
        if msg.action == "sync":
            return reply(rt, "sync", sync(rt, gateway, info, msg.since), info)
        viewing = str(msg.viewing) if msg.viewing else None
        if msg.carries_editing:
            target = (str(msg.editing.task_id), msg.editing.field) if msg.editing else None
            presence.update_editing(rt, gateway, info, msg.status, viewing, target)
        else:
            presence.update(rt, gateway, info, msg.status, viewing)
        return {"statusCode": 200}
    except CollabError as exc:
        if isinstance(exc, Forbidden):  # removed from the workspace: this connection is over
            rt.connections.pop(info.connection_id, None)
            gateway.delete(info.connection_id)
        return error(rt, exc, info)


def _mutate(rt: Runtime, gateway: ManagementApi, info: ConnInfo, msg: Any, rid: str) -> dict[str, Any]:
    """Run the mutation under the request ledger (:mod:`collab.domain.ledger`): its answer is
    written in its own transaction, so a retry after Redis forgot the claim, or after a COMMIT whose
    outcome was unknown, gets the first answer and changes nothing."""
    started = time.perf_counter()
    uid = info.user_id
    entry = ledger.Entry(uid, f"ws:{rid}")

    def answer_of(result: Any) -> ledger.Answer:
        if isinstance(result, tasks.Mutation):
            return ledger.Answer(200, dumps(_ok(rid, result)))
        return ledger.Answer(200, dumps({"request_id": rid, "ok": True, "notification_ids": result}))

    def refused(exc: CollabError) -> ledger.Answer:
        return ledger.Answer(exc.status, dumps(ack_error(rid, exc)))

    def mutate(db: Any) -> Any:
        if msg.action == "notification.read":
            return notifications.mark_read(db, uid, [str(i) for i in msg.notification_ids])
        if msg.action == "task.create":
            return tasks.create(db, uid, msg.task, workspace_id=info.workspace_id)
        if msg.action == "task.update":
            return tasks.update(
                db,
                uid,
                str(msg.task_id),
                msg.changes.patch(),
                base_version=msg.base_version,
                seen_version=msg.seen_version,
                scope=info.workspace_id,
            )
        if msg.action in ("task.undo", "task.redo"):
            return undo.revert(db, uid, info.workspace_id, msg.seq, redo=msg.action == "task.redo")
        return tasks.delete(db, uid, str(msg.task_id), scope=info.workspace_id)

    try:
        result, answer = ledger.execute(rt.db, entry, mutate, answer_of, refused)
    except CollabError as exc:  # transient (5xx): free the claim, so a retry tries again
        _settle_claim(rt, uid, rid, None)
        return ack(rt, info, ack_error(rid, exc))
    except Exception:
        _settle_claim(rt, uid, rid, None)
        raise
    if not isinstance(result, tasks.Mutation):  # a replay, a refusal, or notification.read
        _settle_claim(rt, uid, rid, answer.body)
        replied: dict[str, Any] = json.loads(answer.body)
        return ack(rt, info, replied)
    m = result
    try:
        receipt = events.publish(
            rt, m.committed, gateway, exclude_connection=info.connection_id, answer=(uid, rid, answer.body)
        )
    except CollabError:  # Redis down after the commit: the change stands, peers catch up with sync
        logger.exception("publish after commit failed")
        receipt = None
    if receipt is not None:
        metrics.add_metric(
            name="FanoutSize",
            unit=MetricUnit.Count,
            value=len(receipt.delivered) + len(receipt.gone) + len(receipt.failed),
        )
        metrics.add_metric(name="GoneConnections", unit=MetricUnit.Count, value=len(receipt.gone))
        logger.info("published", extra={"seq": m.seq, **receipt.counts()})
    metrics.add_metric(
        name="MutationLatency", unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1000
    )
    return ack(rt, info, _ok(rid, m))


def _ok(rid: str, m: tasks.Mutation) -> dict[str, Any]:
    """A task mutation's ``ack``: the committed task and seq; with ``seen_version`` (v1.3) the
    conflict receipt (``overwrote``) and, when a description was merged, ``merged``."""
    out: dict[str, Any] = {"request_id": rid, "ok": True, "task": m.task, "seq": m.seq}
    if m.overwrote is not None:
        out["overwrote"] = m.overwrote
    if m.merged:
        out["merged"] = m.merged
    return out
