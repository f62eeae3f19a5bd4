"""The WebSocket routes: what happens on ``$connect``, ``heartbeat``, ``$default`` and ``$disconnect``.

Each function takes the API Gateway event and the container's :class:`Runtime` and returns the
Lambda response: ``{"statusCode"}`` plus, on the two-way routes (``heartbeat`` and ``$default``, which
have a route response), a ``body`` that API Gateway sends back to the sender. Replies to the sender
therefore cost no Management API call; peers are reached through ``post_to_connection``.

The path of a mutating frame (``task.update``, say), in order:
  1. decode (size, JSON, known action) and validate (pydantic) - bad input changes nothing;
  2. one Redis script: count the frame against the user's rate limit and claim its request_id;
  3. one Postgres transaction: the task, its seq and activity row, notifications (``tasks``);
  4. remember the answer for the request_id, then publish: history + fan-out (``events``);
  5. return the ``ack`` with the committed task and seq as the route response.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from collab.adapters.redis.store import ConnInfo
from collab.auth.tickets import LEEWAY_S, verify_ticket
from collab.clock import iso
from collab.domain import presence
from collab.errors import CollabError, Forbidden, RateLimited, Unauthorized, ValidationError
from collab.observability import MetricUnit, logger, metrics
from collab.protocol.wire import MESSAGE_LIMIT, dumps, frame

if TYPE_CHECKING:
    from collab.adapters.apigw.management import ManagementApi
    from collab.protocol.client_frames import BadFrame
    from collab.runtime import Runtime

FRAME_LIMIT = 100  # frames per minute per user across their connections; heartbeat not counted
CONNECT_LIMIT = 30  # connection attempts per minute per user: room for reconnect storms, not floods
WINDOW_MS = 60_000
PENDING_WAIT_S = 5.0  # a duplicate waits this long for the first attempt's answer


# -- helpers -----------------------------------------------------------------------------------
def _ctx(event: dict[str, Any]) -> dict[str, Any]:
    return event.get("requestContext") or {}


def _endpoint(event: dict[str, Any]) -> str | None:
    ctx = _ctx(event)
    domain, stage = ctx.get("domainName"), ctx.get("stage")
    return f"https://{domain}/{stage}" if domain and stage else None


def _reply(rt: Runtime, type_: str, data: dict[str, Any], info: ConnInfo | None = None) -> dict[str, Any]:
    out = frame(
        type_,
        info.workspace_id if info else None,
        info.user_id if info else None,
        iso(rt.clock.utcnow()),
        data,
    )
    body = dumps(out)
    if not body.isascii():
        try:
            body.encode()
        except UnicodeEncodeError:  # a lone surrogate echoed from the frame ("\ud800" in a request_id)
            body = json.dumps(out, separators=(",", ":"))  # as \u escapes: a valid UTF-8 text frame
    if len(body) * 4 > MESSAGE_LIMIT and len(body.encode()) > MESSAGE_LIMIT:
        # API Gateway would not deliver it (128 KB); every reply is budgeted below that, so this
        # is a bug, answered as one rather than left unanswered.
        logger.error("reply over API Gateway's 128 KB", extra={"type": type_, "bytes": len(body.encode())})
        return _error(rt, CollabError("the reply would exceed 128 KB"), info)
    return {"statusCode": 200, "body": body}


def _error(rt: Runtime, exc: CollabError | BadFrame, info: ConnInfo | None = None) -> dict[str, Any]:
    data = exc.to_wire() if isinstance(exc, CollabError) else {"code": exc.code, "message": exc.message}
    return _reply(rt, "error", data, info)


def _ack(rt: Runtime, info: ConnInfo, data: dict[str, Any]) -> dict[str, Any]:
    return _reply(rt, "ack", data, info)


def _ack_error(request_id: str | None, exc: CollabError) -> dict[str, Any]:
    return {"request_id": request_id, "ok": False, "error": exc.to_wire()}


def connection_info(rt: Runtime, cid: str) -> ConnInfo | None:
    info = rt.connections.get(cid)
    if info is None:
        info = rt.store.connection(cid)
        if info is not None:
            rt.remember(info)
    return info


# -- $connect ----------------------------------------------------------------------------------
def connect(rt: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    """Ticket, rate limit, single use, membership, registration: 200 / 401 / 403 / 429."""
    cid = _ctx(event).get("connectionId", "")
    token = (event.get("queryStringParameters") or {}).get("token")
    try:
        ticket = verify_ticket(token, rt.settings.jwt_key, rt.settings.jwt_issuer)
        now = rt.clock.now_ms()
        kind, retry = rt.store.begin(
            ticket.user_id, bucket="connrl", limit=CONNECT_LIMIT, window_ms=WINDOW_MS, now_ms=now
        )
        if kind == "limited":
            raise RateLimited("too many connection attempts", retry_after_ms=int(retry))
        ttl_ms = max(1000, (ticket.expires_at + LEEWAY_S) * 1000 - int(time.time() * 1000))
        if not rt.store.consume_ticket(ticket.jti, ttl_ms):
            raise Unauthorized("ticket already used")
        name = _member_name(rt, ticket.workspace_id, ticket.user_id)
        info = ConnInfo(cid, ticket.workspace_id, ticket.user_id, name, now)
        rt.store.register(info, now)
        # A removal that committed between the check above and the registration may already have
        # closed the user's connections (presence.close_user) without seeing this one: look again.
        try:
            _member_name(rt, ticket.workspace_id, ticket.user_id)
        except Forbidden:
            rt.store.remove_connections(ticket.workspace_id, [cid])
            raise
        rt.remember(info)
    except CollabError as exc:
        logger.info("connect refused", extra={"connection_id": cid, "status": exc.status, "reason": exc.code})
        metrics.add_metric(name="ConnectRefused", unit=MetricUnit.Count, value=1)
        return {"statusCode": exc.status, "body": dumps({"error": exc.to_wire()})}
    logger.info("connected", extra={"connection_id": cid, "workspace_id": info.workspace_id})
    metrics.add_metric(name="Connections", unit=MetricUnit.Count, value=1)
    return {"statusCode": 200}


def _member_name(rt: Runtime, wid: str, uid: str) -> str:
    def tx(cur: Any) -> str:
        row = cur.execute(
            "SELECT u.display_name, u.email FROM workspace_members m JOIN users u ON u.id = m.user_id"
            " WHERE m.workspace_id = %s AND m.user_id = %s",
            (wid, uid),
        ).fetchone()
        if row is None:
            raise Forbidden("not a member of this workspace")
        return str(row["display_name"] or row["email"] or uid)

    return rt.db.run(tx)


# -- $disconnect -------------------------------------------------------------------------------
def disconnect(rt: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    cid = _ctx(event).get("connectionId", "")
    try:
        info = connection_info(rt, cid)
        rt.connections.pop(cid, None)  # after the lookup, which caches what it finds
        if info is not None:
            presence.disconnect(rt, rt.gateway_for(_endpoint(event)), info)
    except CollabError as exc:  # Redis down: the sweeper removes the connection once it is back
        rt.connections.pop(cid, None)
        logger.warning("disconnect not recorded", extra={"connection_id": cid, "reason": exc.code})
        return {"statusCode": 200}
    logger.info("disconnected", extra={"connection_id": cid, "known": info is not None})
    return {"statusCode": 200}


# -- heartbeat ---------------------------------------------------------------------------------
def heartbeat(rt: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    cid = _ctx(event).get("connectionId", "")
    gateway = rt.gateway_for(_endpoint(event))
    try:
        info = connection_info(rt, cid)
        alive = info is not None and presence.heartbeat(rt, gateway, info)
    except CollabError as exc:  # Redis down: answered (internal), the connection stays
        return _error(rt, exc, rt.connections.get(cid))
    if not alive:
        return _gone(rt, gateway, cid)
    return _reply(rt, "heartbeat.ack", {}, info)


def _gone(rt: Runtime, gateway: ManagementApi, cid: str) -> dict[str, Any]:
    """A frame from a connection we no longer know (swept, or its state was lost): tell the client
    to reconnect, and close it."""
    rt.connections.pop(cid, None)
    gateway.delete(cid)
    return _error(rt, Unauthorized("connection is not registered; reconnect"))


# -- sweeper -----------------------------------------------------------------------------------
def sweep(rt: Runtime) -> dict[str, Any]:
    removed = presence.sweep(rt, rt.gateway_for(None))
    metrics.add_metric(name="SweptConnections", unit=MetricUnit.Count, value=removed)
    logger.info("swept", extra={"removed": removed})
    return {"removed": removed}


# -- $default ----------------------------------------------------------------------------------
def message(rt: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    from collab.protocol import client_frames

    cid = _ctx(event).get("connectionId", "")
    gateway = rt.gateway_for(_endpoint(event))
    try:
        info = connection_info(rt, cid)
    except CollabError as exc:  # Redis down: the frame cannot be placed; answered, the client retries
        return _error(rt, exc)
    if info is None:
        return _gone(rt, gateway, cid)
    metrics.add_metric(name="Messages", unit=MetricUnit.Count, value=1)
    body = event.get("body")
    try:
        obj = client_frames.decode(body)
    except client_frames.BadFrame as exc:
        return _error(rt, exc, info)
    except CollabError as exc:  # payload_too_large
        return _too_large(rt, info, body, exc)
    request_id = client_frames.request_id_of(obj)
    logger.set_correlation_id(f"{cid}/{request_id}" if request_id else cid)
    mutation = obj["action"] in client_frames.MUTATIONS
    try:
        msg = client_frames.parse(obj)
    except ValidationError as exc:
        return _ack(rt, info, _ack_error(request_id, exc)) if mutation else _error(rt, exc, info)
    if msg.action == "heartbeat":  # only when a client's frame bypassed the heartbeat route
        return heartbeat(rt, event)
    rid = str(msg.request_id) if mutation else None
    try:
        kind, value = rt.store.begin(
            info.user_id,
            bucket="rl",
            limit=FRAME_LIMIT,
            window_ms=WINDOW_MS,
            now_ms=rt.clock.now_ms(),
            request_id=rid,
        )
        if kind == "limited":
            raise RateLimited("rate limit: 100 frames per minute", retry_after_ms=int(value))
    except CollabError as exc:
        return _ack(rt, info, _ack_error(rid, exc)) if mutation else _error(rt, exc, info)
    if kind == "seen":
        return _ack(rt, info, _await_answer(rt, info.user_id, rid, value))
    if rid is None:
        return _read_action(rt, gateway, info, msg)
    return _mutate(rt, gateway, info, msg, rid)


def _too_large(rt: Runtime, info: ConnInfo, body: Any, exc: CollabError) -> dict[str, Any]:
    from collab.protocol import client_frames

    try:
        obj = json.loads(body)
        rid = client_frames.request_id_of(obj) if isinstance(obj, dict) else None
    except (ValueError, TypeError, RecursionError):
        rid = None
    return _ack(rt, info, _ack_error(rid, exc)) if rid else _error(rt, exc, info)


def _await_answer(rt: Runtime, uid: str, rid: str | None, value: str) -> dict[str, Any]:
    """A repeated request_id: the first attempt's answer, waiting for it while it is still running."""
    assert rid is not None
    from collab.deadline import remaining

    left = remaining()  # never past the invocation's own end
    deadline = time.monotonic() + (PENDING_WAIT_S if left is None else max(0.0, min(PENDING_WAIT_S, left)))
    while value == "pending" and time.monotonic() < deadline:
        time.sleep(0.02)
        try:
            value = rt.store.request_answer(uid, rid) or "pending"
        except CollabError as exc:  # Redis down while waiting: this attempt is answered internal
            return _ack_error(rid, exc)
    if value == "pending":
        return _ack_error(rid, CollabError("the first attempt of this request is still running; retry"))
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
    from collab.domain.sync import sync

    try:
        if msg.action == "sync":
            return _reply(rt, "sync", sync(rt, gateway, info, msg.since), info)
        presence.update(rt, gateway, info, msg.status, str(msg.viewing) if msg.viewing else None)
        return {"statusCode": 200}
    except CollabError as exc:
        if isinstance(exc, Forbidden):  # removed from the workspace: this connection is over
            rt.connections.pop(info.connection_id, None)
            gateway.delete(info.connection_id)
        return _error(rt, exc, info)


def _mutate(rt: Runtime, gateway: ManagementApi, info: ConnInfo, msg: Any, rid: str) -> dict[str, Any]:
    from collab.domain import events, notifications, tasks

    started = time.perf_counter()
    try:
        if msg.action == "notification.read":
            ids = notifications.mark_read(rt.db, info.user_id, [str(i) for i in msg.notification_ids])
            answer: dict[str, Any] = {"request_id": rid, "ok": True, "notification_ids": ids}
            _settle_claim(rt, info.user_id, rid, dumps(answer))
            return _ack(rt, info, answer)
        if msg.action == "task.create":
            m = tasks.create(rt.db, info.user_id, msg.task, workspace_id=info.workspace_id)
        elif msg.action == "task.update":
            m = tasks.update(
                rt.db,
                info.user_id,
                str(msg.task_id),
                msg.changes.patch(),
                base_version=msg.base_version,
                scope=info.workspace_id,
            )
        else:
            m = tasks.delete(rt.db, info.user_id, str(msg.task_id), scope=info.workspace_id)
    except CollabError as exc:
        answer = _ack_error(rid, exc)
        # transient (5xx): free the claim, so a retry tries again
        _settle_claim(rt, info.user_id, rid, None if exc.status >= 500 else dumps(answer))
        return _ack(rt, info, answer)
    except Exception:
        _settle_claim(rt, info.user_id, rid, None)
        raise
    answer = {"request_id": rid, "ok": True, "task": m.task, "seq": m.seq}
    try:
        receipt = events.publish(
            rt,
            m.committed,
            gateway,
            exclude_connection=info.connection_id,
            answer=(info.user_id, rid, dumps(answer)),
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
    return _ack(rt, info, answer)
