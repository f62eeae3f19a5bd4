"""Webhooks: a workspace's events, signed, at least once and in ``seq`` order, to its admins' endpoints.

Each endpoint keeps a cursor (``delivered_seq``): every event up to it was answered 2xx (or is of a
type the endpoint does not want). Delivering means sending the activity rows after the cursor, in
order, moving the cursor after each 2xx, and stopping at the first failure. The events are read
from the activity log (Postgres), never from the message that woke the worker, so:

- the queue only says "workspace W has news": a message lost, repeated or redriven from the
  dead-letter queue changes nothing but timing (``publish`` enqueues; the scheduled :func:`tick`
  catches up any endpoint that is behind, whatever happened to the message);
- order per endpoint is the log's order; the FIFO queue's group per workspace keeps two workers
  off one workspace at a time.

Retries: a failing endpoint is retried after :data:`BACKOFF_S` (5 s, 5 min, 30 min, 2 h, 5 h, then
every 10 h); new events wait behind the failed one. 24 h after its first failure it is disabled and
the workspace's admins get a ``webhook.disabled`` notification. Redelivery of a range of seqs is a
separate message that sends those events again (same ``webhook-id``: receivers deduplicate).

Who may do what: owners and admins register, list, delete, redeliver and read deliveries.
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from collab.adapters.postgres.database import Cursor, Database
from collab.adapters.redis import keys
from collab.adapters.webhooks import addresses, sender, signing
from collab.clock import iso
from collab.domain import webhook_presence
from collab.domain.access import require_member
from collab.errors import NotFound, ValidationError
from collab.observability import logger
from collab.protocol.wire import dumps

if TYPE_CHECKING:
    from collab.runtime import Runtime

MAX_HOOKS = 10  # endpoints per workspace: each one is a POST per event
MAX_REDELIVER = 1000  # seqs per redelivery request
BATCH = 100  # events per endpoint per worker message; more: the worker enqueues a continuation
# Sending time per message: with a batch of two messages and one last request's timeouts it stays
# inside the function's 120 s (infra/functions.py); what is left goes in a continuation message.
BUDGET_S = 45.0
BACKOFF_S = (5, 300, 1800, 7200, 18000, 36000)  # then every 10 h: the Standard Webhooks schedule
DISABLE_AFTER = timedelta(hours=24)
KEEP_DELIVERIES = timedelta(days=7)
EVENT_TYPES = (
    "task.created",
    "task.updated",
    "task.deleted",
    "member.added",
    "member.removed",
    "member.role_changed",
    *webhook_presence.PRESENCE_TYPES,  # opt-in: not in "every type" (no seq; leaves debounced)
)

_PUBLIC = (
    "SELECT id, workspace_id, url, event_types, created_by, created_at, delivered_seq, attempts,"
    " failing_since, next_attempt_at, last_error, disabled_at FROM webhooks"
)


def _flag(wid: str) -> str:
    """Set while a workspace has at least one endpoint: ``publish`` enqueues only then."""
    return keys.ws(wid, "webhooks")


def _wire(row: dict[str, Any]) -> dict[str, Any]:
    def t(v: datetime | None) -> str | None:
        return None if v is None else iso(v)

    return {
        "id": str(row["id"]),
        "workspace_id": str(row["workspace_id"]),
        "url": row["url"],
        "event_types": list(row["event_types"]),
        "created_by": row["created_by"],
        "created_at": t(row["created_at"]),
        "delivered_seq": int(row["delivered_seq"]),
        "attempts": int(row["attempts"]),
        "failing_since": t(row["failing_since"]),
        "next_attempt_at": t(row["next_attempt_at"]),
        "last_error": row["last_error"],
        "status": "disabled" if row["disabled_at"] else ("failing" if row["failing_since"] else "active"),
        "disabled_at": t(row["disabled_at"]),
    }


def _hook_id(hook_id: str) -> str:
    try:
        return str(uuid.UUID(hook_id))
    except ValueError:
        raise NotFound("webhook not found") from None


# -- the admin's side -------------------------------------------------------------------------
def register(
    rt: Runtime, actor_id: str, workspace_id: str, url: str, event_types: list[str]
) -> dict[str, Any]:
    """A new endpoint, with its secret (shown this once). The URL is checked now (and again at each
    delivery); the cursor starts at the workspace's current seq: only events from now on are sent."""
    unknown = sorted(set(event_types) - set(EVENT_TYPES))
    if unknown:
        raise ValidationError(f"event_types: unknown type {unknown[0]!r}", field="event_types")
    addresses.parse(url, allow_loopback=rt.settings.webhook_allow_loopback)

    def check(cur: Cursor) -> None:
        require_member(cur, workspace_id, actor_id, at_least="admin")

    rt.db.run(check)  # the role first: an outsider learns nothing about how a URL resolves
    addresses.check(url, allow_loopback=rt.settings.webhook_allow_loopback)
    secret = signing.new_secret()

    def tx(cur: Cursor) -> dict[str, Any]:
        require_member(cur, workspace_id, actor_id, at_least="admin")
        # The workspace row's lock orders this against concurrent events: the cursor is exact.
        seq = cur.execute("SELECT last_seq FROM workspaces WHERE id = %s FOR UPDATE", (workspace_id,))
        last_seq = int(seq.fetchone()["last_seq"])  # type: ignore[index]
        row = cur.execute("SELECT count(*) AS n FROM webhooks WHERE workspace_id = %s", (workspace_id,))
        if int(row.fetchone()["n"]) >= MAX_HOOKS:  # type: ignore[index]
            raise ValidationError(f"a workspace has at most {MAX_HOOKS} webhooks", field="url")
        hook = cur.execute(
            "INSERT INTO webhooks (workspace_id, url, event_types, secret, created_by, delivered_seq)"
            " VALUES (%s, %s, %s, %s, %s, %s) RETURNING *",
            (workspace_id, url, sorted(set(event_types)), secret, actor_id, last_seq),
        ).fetchone()
        assert hook is not None
        return {**_wire(hook), "secret": secret}

    out = rt.db.run(tx)
    rt.store.r.set(_flag(workspace_id), 1)
    return out


def list_hooks(db: Database, actor_id: str, workspace_id: str) -> dict[str, Any]:
    def tx(cur: Cursor) -> dict[str, Any]:
        require_member(cur, workspace_id, actor_id, at_least="admin")
        rows = cur.execute(f"{_PUBLIC} WHERE workspace_id = %s ORDER BY created_at, id", (workspace_id,))
        return {"items": [_wire(r) for r in rows.fetchall()], "next_cursor": None}

    return db.run(tx)


def delete(rt: Runtime, actor_id: str, workspace_id: str, hook_id: str) -> None:
    hid = _hook_id(hook_id)

    def tx(cur: Cursor) -> int:
        require_member(cur, workspace_id, actor_id, at_least="admin")
        if (
            cur.execute(
                "DELETE FROM webhooks WHERE id = %s AND workspace_id = %s RETURNING id", (hid, workspace_id)
            ).fetchone()
            is None
        ):
            raise NotFound("webhook not found")
        row = cur.execute("SELECT count(*) AS n FROM webhooks WHERE workspace_id = %s", (workspace_id,))
        return int(row.fetchone()["n"])  # type: ignore[index]

    if rt.db.run(tx) == 0:
        rt.store.r.delete(_flag(workspace_id))


def redeliver(
    rt: Runtime, actor_id: str, workspace_id: str, hook_id: str, from_seq: int, to_seq: int
) -> dict[str, Any]:
    """Queue the events ``from_seq..to_seq`` to be sent again to one endpoint (in order, signed with
    the same ``webhook-id`` as the first time). Only seqs the workspace has had."""
    hid = _hook_id(hook_id)
    if to_seq < from_seq or to_seq - from_seq + 1 > MAX_REDELIVER:
        raise ValidationError(f"to_seq: from from_seq, at most {MAX_REDELIVER} seqs", field="to_seq")

    def tx(cur: Cursor) -> dict[str, Any]:
        require_member(cur, workspace_id, actor_id, at_least="admin")
        row = cur.execute(
            "SELECT h.id, w.last_seq FROM webhooks h JOIN workspaces w ON w.id = h.workspace_id"
            " WHERE h.id = %s AND h.workspace_id = %s",
            (hid, workspace_id),
        ).fetchone()
        if row is None:
            raise NotFound("webhook not found")
        if to_seq > int(row["last_seq"]):
            raise ValidationError(f"to_seq: the workspace's last seq is {row['last_seq']}", field="to_seq")
        return {"webhook_id": hid, "from_seq": from_seq, "to_seq": to_seq}

    job = rt.db.run(tx)
    message = {"kind": "redeliver", "workspace_id": workspace_id, **job}
    if rt.queue is not None:
        rt.queue.send(workspace_id, message, f"{workspace_id}:redeliver:{uuid.uuid4()}")
    else:
        handle_message(rt, message)
    return {**job, "status": "queued"}


def deliveries(db: Database, actor_id: str, workspace_id: str, hook_id: str, limit: int) -> dict[str, Any]:
    """The endpoint's latest ``limit`` attempts, newest first (the route's page size, 1-200)."""
    hid = _hook_id(hook_id)

    def tx(cur: Cursor) -> dict[str, Any]:
        require_member(cur, workspace_id, actor_id, at_least="admin")
        if (
            cur.execute(
                "SELECT 1 FROM webhooks WHERE id = %s AND workspace_id = %s", (hid, workspace_id)
            ).fetchone()
            is None
        ):
            raise NotFound("webhook not found")
        rows = cur.execute(
            "SELECT seq, attempt, outcome, status_code, error, duration_ms, redelivery, created_at"
            " FROM webhook_deliveries WHERE webhook_id = %s ORDER BY id DESC LIMIT %s",
            (hid, limit),
        ).fetchall()
        return {"items": [{**r, "created_at": iso(r["created_at"])} for r in rows], "next_cursor": None}

    return db.run(tx)


# -- after a commit -------------------------------------------------------------------------
def enqueue(rt: Runtime, workspace_id: str, seq: int) -> None:
    """Called by ``events.publish`` after each committed event: wake the worker for the workspace.

    Best effort by design: without a queue, or when it fails, the minute tick delivers instead."""
    queue = rt.queue
    if queue is None:
        return
    try:
        if not rt.store.r.exists(_flag(workspace_id)):
            return
        queue.send(
            workspace_id, {"kind": "event", "workspace_id": workspace_id, "seq": seq}, f"{workspace_id}:{seq}"
        )
    except Exception:  # noqa: BLE001 - the tick catches up; the commit stands
        logger.warning("webhook enqueue failed", extra={"workspace_id": workspace_id, "seq": seq})


# -- the worker -----------------------------------------------------------------------------
def handle_message(rt: Runtime, message: dict[str, Any]) -> None:
    """One queue message. Raises only when the database fails (SQS retries it, then dead-letters it)."""
    wid = str(message["workspace_id"])
    if message.get("kind") == "presence":
        _send_presence(rt, wid, [message["event"]])
        return
    if message.get("kind") == "redeliver":
        _redeliver(rt, str(message["webhook_id"]), int(message["from_seq"]), int(message["to_seq"]))
        return
    if deliver_workspace(rt, wid) and rt.queue is not None:
        rt.queue.send(wid, {"kind": "catch_up", "workspace_id": wid}, f"{wid}:more:{uuid.uuid4()}")


def deliver_workspace(rt: Runtime, workspace_id: str) -> bool:
    """Bring every due endpoint of the workspace up to its last seq (at most :data:`BATCH` events
    each). True when some endpoint still has more to send right away."""
    leaves = webhook_presence.due_leaves(rt, workspace_id)
    if leaves:
        _send_presence(rt, workspace_id, leaves)
    now = rt.clock.utcnow()
    hooks = rt.db.run(
        lambda cur: cur.execute(
            "SELECT h.*, w.last_seq FROM webhooks h JOIN workspaces w ON w.id = h.workspace_id"
            " WHERE h.workspace_id = %s AND h.disabled_at IS NULL AND h.delivered_seq < w.last_seq"
            " AND (h.next_attempt_at IS NULL OR h.next_attempt_at <= %s) ORDER BY h.created_at",
            (workspace_id, now),
        ).fetchall()
    )
    deadline = time.monotonic() + BUDGET_S
    more = False
    for hook in hooks:
        more |= _catch_up(rt, hook, deadline)
    return more


def _events(rt: Runtime, workspace_id: str, after: int, upto: int, limit: int) -> list[dict[str, Any]]:
    return rt.db.run(
        lambda cur: cur.execute(
            "SELECT workspace_id, seq, actor_id, type, payload, created_at FROM activity"
            " WHERE workspace_id = %s AND seq > %s AND seq <= %s ORDER BY seq LIMIT %s",
            (workspace_id, after, upto, limit),
        ).fetchall()
    )


def message_id(workspace_id: str, seq: int) -> str:
    """``webhook-id``: one per event, the same on every retry and redelivery (receivers deduplicate)."""
    return f"evt_{workspace_id.replace('-', '')}_{seq}"


def body_of(row: dict[str, Any]) -> bytes:
    """The Standard Webhooks payload: ``type``, ``timestamp`` and the event frame as ``data``."""
    from collab.domain.events import activity_frame

    event = activity_frame(row)
    return dumps({"type": event["type"], "timestamp": event["timestamp"], "data": event}).encode()


def _send(rt: Runtime, hook: dict[str, Any], row: dict[str, Any]) -> sender.Attempt:
    return sender.deliver(
        hook["url"],
        hook["secret"],
        message_id(str(hook["workspace_id"]), int(row["seq"])),
        body_of(row),
        allow_loopback=rt.settings.webhook_allow_loopback,
        timeout=rt.settings.webhook_timeout_s,
    )


def _log(cur: Cursor, hook_id: Any, seq: int, attempt: int, a: sender.Attempt, redelivery: bool) -> None:
    outcome = "delivered" if a.ok else ("refused" if a.refused else "failed")
    cur.execute(
        "INSERT INTO webhook_deliveries (webhook_id, seq, attempt, outcome, status_code, error, duration_ms,"
        " redelivery) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (hook_id, seq, attempt, outcome, a.status, a.error, a.duration_ms, redelivery),
    )


def _catch_up(rt: Runtime, hook: dict[str, Any], deadline: float) -> bool:
    wid, hid = str(hook["workspace_id"]), hook["id"]
    wanted = set(hook["event_types"])
    cursor = int(hook["delivered_seq"])
    tries = int(hook["attempts"]) + 1  # the attempt number of the next send
    rows = _events(rt, wid, cursor, int(hook["last_seq"]), BATCH)
    for row in rows:
        seq = int(row["seq"])
        if wanted and row["type"] not in wanted:
            cursor = seq
            continue
        if time.monotonic() > deadline:
            _advance(rt, hid, cursor)
            return True
        attempt = _send(rt, hook, row)
        if not attempt.ok:
            _failed(rt, hook, cursor, seq, attempt)
            return False
        rt.db.run(functools.partial(_succeeded, hook_id=hid, seq=seq, tries=tries, attempt=attempt))
        tries = 1
        cursor = seq
    _advance(rt, hid, cursor)
    return len(rows) == BATCH and cursor < int(hook["last_seq"])


def _succeeded(cur: Cursor, hook_id: Any, seq: int, tries: int, attempt: sender.Attempt) -> None:
    _log(cur, hook_id, seq, tries, attempt, False)
    cur.execute(
        "UPDATE webhooks SET delivered_seq = GREATEST(delivered_seq, %s), attempts = 0,"
        " failing_since = NULL, next_attempt_at = NULL, last_error = NULL WHERE id = %s",
        (seq, hook_id),
    )


def _advance(rt: Runtime, hook_id: Any, cursor: int) -> None:
    """Move the cursor past events the endpoint does not want."""
    rt.db.run(
        lambda cur: cur.execute(
            "UPDATE webhooks SET delivered_seq = GREATEST(delivered_seq, %s) WHERE id = %s", (cursor, hook_id)
        )
    )


def _failed(rt: Runtime, hook: dict[str, Any], cursor: int, seq: int, attempt: sender.Attempt) -> None:
    """Record a failed attempt; schedule the next one, or disable the endpoint after 24 h of failing."""
    now = rt.clock.utcnow()
    attempts = int(hook["attempts"]) + 1
    since = hook["failing_since"] or now
    delay = BACKOFF_S[min(attempts, len(BACKOFF_S)) - 1]
    disable = now - since >= DISABLE_AFTER

    def tx(cur: Cursor) -> list[Any]:
        _log(cur, hook["id"], seq, attempts, attempt, False)
        cur.execute(
            "UPDATE webhooks SET delivered_seq = GREATEST(delivered_seq, %s), attempts = %s,"
            " failing_since = %s, next_attempt_at = %s, last_error = %s, disabled_at = %s WHERE id = %s",
            (
                cursor,
                attempts,
                since,
                None if disable else now + timedelta(seconds=delay),
                attempt.error,
                now if disable else None,
                hook["id"],
            ),
        )
        if not disable:
            return []
        return _notify_admins(cur, hook, seq, attempt)

    notified = rt.db.run(tx)
    if notified:
        logger.warning("webhook disabled", extra={"webhook_id": str(hook["id"]), "seq": seq})
        _push(rt, notified)


def _notify_admins(cur: Cursor, hook: dict[str, Any], seq: int, attempt: sender.Attempt) -> list[Any]:
    from collab.models import Notification

    rows = cur.execute(
        "INSERT INTO notifications (user_id, type, workspace_id, payload)"
        " SELECT user_id, 'webhook.disabled', workspace_id, %s FROM workspace_members"
        " WHERE workspace_id = %s AND role IN ('owner', 'admin') RETURNING *",
        (
            json.dumps(
                {"webhook_id": str(hook["id"]), "url": hook["url"], "seq": seq, "last_error": attempt.error}
            ),
            hook["workspace_id"],
        ),
    ).fetchall()
    return [{"user_id": r["user_id"], "notification": Notification.model_validate(r).wire()} for r in rows]


def _push(rt: Runtime, items: list[dict[str, Any]]) -> None:
    from collab.domain.events import push_notifications

    try:
        push_notifications(rt, items, rt.gateway_for(None))
    except Exception:  # noqa: BLE001 - they arrive with the admins' next sync anyway
        logger.warning("pushing webhook notifications failed")


def _redeliver(rt: Runtime, hook_id: str, from_seq: int, to_seq: int) -> None:
    hook = rt.db.run(lambda cur: cur.execute("SELECT * FROM webhooks WHERE id = %s", (hook_id,)).fetchone())
    if hook is None or hook["disabled_at"] is not None:
        return
    wanted = set(hook["event_types"])
    for row in _events(rt, str(hook["workspace_id"]), from_seq - 1, to_seq, MAX_REDELIVER):
        if wanted and row["type"] not in wanted:
            continue
        attempt = _send(rt, hook, row)
        seq = int(row["seq"])

        def log(cur: Cursor, seq: int = seq, attempt: sender.Attempt = attempt) -> None:
            _log(cur, hook_id, seq, 1, attempt, True)

        rt.db.run(log)
        if not attempt.ok:
            return  # the admin sees where it stopped (GET .../deliveries) and asks again


def _send_presence(rt: Runtime, workspace_id: str, events: list[dict[str, Any]]) -> None:
    """Presence events go once to each enabled endpoint that asked for their type: best effort,
    not retried (they carry no seq; the next change supersedes them). Logged with seq 0."""
    from collab.protocol.wire import frame

    hooks = rt.db.run(
        lambda cur: cur.execute(
            "SELECT * FROM webhooks WHERE workspace_id = %s AND disabled_at IS NULL", (workspace_id,)
        ).fetchall()
    )
    for event in events:
        at = datetime.fromtimestamp(int(event["at_ms"]) / 1000, tz=UTC)
        status = "active" if event["type"] == "presence.joined" else "away"
        data = {"user": event["user"], "status": status, "viewing": None, "last_seen": iso(at)}
        body_frame = frame(event["type"], workspace_id, event["user"]["id"], iso(at), data)
        body = dumps({"type": event["type"], "timestamp": iso(at), "data": body_frame}).encode()
        kind = event["type"].split(".")[1]
        msg_id = f"prs_{workspace_id.replace('-', '')}_{kind}_{event['at_ms']}_{event['user']['id']}"
        for hook in hooks:
            if event["type"] not in hook["event_types"]:
                continue
            attempt = sender.deliver(
                hook["url"], hook["secret"], msg_id[:256], body,
                allow_loopback=rt.settings.webhook_allow_loopback, timeout=rt.settings.webhook_timeout_s,
            )  # fmt: skip
            rt.db.run(
                functools.partial(_log, hook_id=hook["id"], seq=0, attempt=1, a=attempt, redelivery=False)
            )


# -- the schedule ---------------------------------------------------------------------------
def tick(rt: Runtime) -> dict[str, int]:
    """Every minute: wake the worker for each workspace with an endpoint that is behind and due (a
    retry, or an event whose message was lost), and prune the attempt log."""
    now = rt.clock.utcnow()

    def tx(cur: Cursor) -> list[str]:
        cur.execute("DELETE FROM webhook_deliveries WHERE created_at < %s", (now - KEEP_DELIVERIES,))
        rows = cur.execute(
            "SELECT DISTINCT h.workspace_id FROM webhooks h JOIN workspaces w ON w.id = h.workspace_id"
            " WHERE h.disabled_at IS NULL AND h.delivered_seq < w.last_seq"
            " AND (h.next_attempt_at IS NULL OR h.next_attempt_at <= %s) LIMIT 1000",
            (now,),
        ).fetchall()
        return [str(r["workspace_id"]) for r in rows]

    due = list(dict.fromkeys([*rt.db.run(tx), *webhook_presence.workspaces_with_due_leaves(rt)]))
    minute = int(rt.clock.now() // 60)
    for wid in due:
        if rt.queue is not None:
            rt.queue.send(wid, {"kind": "catch_up", "workspace_id": wid}, f"{wid}:tick:{minute}")
        else:
            deliver_workspace(rt, wid)
    return {"workspaces": len(due)}


# -- the function's entry ---------------------------------------------------------------------
def handle(rt: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    """``functions/webhooks``: an SQS batch (partial failures reported, so one bad message is retried
    alone and dead-lettered after five receives) or EventBridge's minute schedule (:func:`tick`)."""
    if "Records" not in event:
        return tick(rt)
    records = event["Records"]
    for i, record in enumerate(records):
        try:
            handle_message(rt, json.loads(record["body"]))
        except Exception:  # noqa: BLE001 - reported to SQS: retried after the visibility timeout
            logger.exception("webhook message failed", extra={"message_id": record.get("messageId")})
            # FIFO: stop at the first failure and hand back it and everything after it, in order.
            return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in records[i:]]}
    return {"batchItemFailures": []}
