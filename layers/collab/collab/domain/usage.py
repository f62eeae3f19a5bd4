"""The cost meter: what a workspace uses, priced with :mod:`collab.pricing` (the model of
``bench/cost.py``), and its budget.

Metered per workspace and calendar month (UTC), in one Redis hash per month:

- ``frames_in``: WebSocket frames its connections sent (``$default`` and ``heartbeat``), and
  ``replies_out``, the route responses they got;
- ``posts_out``: Management API posts to its connections (event fan-out, presence);
- ``heartbeats``: each stands for half a connection-minute (clients beat every 30 s), so
  ``connection_minutes`` = heartbeats / 2;
- ``invocations``, ``handler_ms`` and ``gb_ms`` (milliseconds x GB of the function's memory) of
  those WebSocket routes.

Counts are buffered in the container and written at most every :data:`FLUSH_S` (one pipelined
round trip), so metering costs the hot path almost nothing; a container that dies loses at most
that much: the meter is an estimate, like the bill it predicts.

Budget: ``WORKSPACE_BUDGET_USD`` (per workspace per month, unset: none). When a workspace's monthly
estimate passes it, presence updates are throttled first (one ``presence.updated`` per user per
:data:`PRESENCE_EVERY_S` instead of every change: they are the chattiest frames and the least
needed), and its owners and admins get one ``usage.over_budget`` notification that month.
"""

from __future__ import annotations

import calendar
import functools
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from collab import pricing
from collab.adapters.redis import keys
from collab.observability import logger

if TYPE_CHECKING:
    from collab.runtime import Runtime

FLUSH_S = 5.0
PRESENCE_EVERY_S = 30
FLAG_CACHE_S = 60.0  # how long a container trusts what it read about a workspace's budget flag
KEEP_S = 40 * 86400  # a month's counters outlive the month a little (the month's last estimate)

_lock = threading.Lock()
_buffer: dict[str, Counter[str]] = {}
_last_flush = 0.0
_flags: dict[str, tuple[float, bool]] = {}


def month_of(dt: datetime) -> str:
    return f"{dt.year:04d}-{dt.month:02d}"


def _key(wid: str, month: str) -> str:
    return keys.ws(wid, f"usage:{month}")


def _flag(wid: str, month: str) -> str:
    return keys.ws(wid, f"over_budget:{month}")


def add(rt: Runtime, wid: str, *, check_budget: bool = False, **counts: float) -> None:
    """Count use of a workspace (buffered). Never raises: metering must not fail a request."""
    global _last_flush
    try:
        with _lock:
            _buffer.setdefault(wid, Counter()).update(counts)
            now = time.monotonic()  # the container's write cadence, not domain time
            if now - _last_flush < FLUSH_S:
                return
            _last_flush = now
            pending = dict(_buffer)
            _buffer.clear()
        _flush(rt, pending, check_budget)
    except Exception:  # noqa: BLE001 - an estimate: a lost batch is logged, the request goes on
        logger.warning("usage metering failed")


def flush(rt: Runtime, *, check_budget: bool) -> None:
    """Write whatever is buffered now (tests read the meter right after)."""
    with _lock:
        pending = dict(_buffer)
        _buffer.clear()
    _flush(rt, pending, check_budget)


def _flush(rt: Runtime, pending: dict[str, Counter[str]], check_budget: bool) -> None:
    if not pending:
        return
    month = month_of(rt.clock.utcnow())
    p = rt.store.r.pipeline(transaction=False)
    for wid, counts in pending.items():
        for name, value in counts.items():
            if float(value).is_integer():
                p.hincrby(_key(wid, month), name, int(value))
            else:
                p.hincrbyfloat(_key(wid, month), name, float(value))
        p.expire(_key(wid, month), KEEP_S)
    p.execute()
    budget = rt.settings.workspace_budget_usd
    if check_budget and budget is not None:
        for wid in pending:
            _check_budget(rt, wid, month, budget)


def _totals(rt: Runtime, wid: str, month: str) -> dict[str, float]:
    raw = rt.store.r.hgetall(_key(wid, month))
    out = {k.decode() if isinstance(k, bytes) else str(k): float(v) for k, v in raw.items()}
    for name in ("frames_in", "replies_out", "posts_out", "heartbeats", "invocations", "handler_ms", "gb_ms"):
        out.setdefault(name, 0.0)
    return out


def _elapsed_fraction(now: datetime) -> float:
    days = calendar.monthrange(now.year, now.month)[1]
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (now - start).total_seconds() / (days * 86400)


def report(rt: Runtime, wid: str, month: str | None = None) -> dict[str, Any]:
    """A month's use of a workspace with its cost so far and, for the current month, the estimate."""
    now = rt.clock.utcnow()
    current = month_of(now)
    month = month or current
    t = _totals(rt, wid, month)
    minutes = t["heartbeats"] / 2
    cost = pricing.usage_cost(
        frames_in=int(t["frames_in"]),
        replies_out=int(t["replies_out"]),
        posts_out=int(t["posts_out"]),
        connection_minutes=minutes,
        invocations=int(t["invocations"]),
        gb_seconds=t["gb_ms"] / 1000,
    )
    estimate = pricing.month_estimate(cost, _elapsed_fraction(now)) if month == current else cost["total_usd"]
    budget = rt.settings.workspace_budget_usd
    return {
        "workspace_id": wid,
        "month": month,
        "frames_in": int(t["frames_in"]),
        "replies_out": int(t["replies_out"]),
        "posts_out": int(t["posts_out"]),
        "connection_minutes": minutes,
        "invocations": int(t["invocations"]),
        "handler_ms": round(t["handler_ms"], 3),
        "cost_to_date": cost,
        "monthly_estimate_usd": estimate,
        "budget_usd": budget,
        "over_budget": budget is not None and estimate > budget,
    }


def _check_budget(rt: Runtime, wid: str, month: str, budget: float) -> None:
    r = report(rt, wid, month)
    if not r["over_budget"]:
        return
    _flags[wid] = (time.monotonic(), True)
    if rt.store.r.set(_flag(wid, month), 1, nx=True, ex=KEEP_S):
        _tell_admins(rt, wid, r)


def _tell_admins(rt: Runtime, wid: str, r: dict[str, Any]) -> None:
    import json

    from collab.domain.events import push_notifications
    from collab.models import Notification

    payload = json.dumps(
        {
            "month": r["month"],
            "monthly_estimate_usd": round(r["monthly_estimate_usd"], 4),
            "budget_usd": r["budget_usd"],
        }
    )
    rows = rt.db.run(
        lambda cur: cur.execute(
            "INSERT INTO notifications (user_id, type, workspace_id, payload)"
            " SELECT user_id, 'usage.over_budget', workspace_id, %s FROM workspace_members"
            " WHERE workspace_id = %s AND role IN ('owner', 'admin') RETURNING *",
            (payload, wid),
        ).fetchall()
    )
    items = [
        {"user_id": row["user_id"], "notification": Notification.model_validate(row).wire()} for row in rows
    ]
    logger.warning(
        "workspace over budget", extra={"workspace_id": wid, "estimate": r["monthly_estimate_usd"]}
    )
    push_notifications(rt, items, rt.gateway_for(None))


def over_budget(rt: Runtime, wid: str) -> bool:
    """Whether the workspace passed its budget this month (cached per container for a minute)."""
    if rt.settings.workspace_budget_usd is None:
        return False
    cached = _flags.get(wid)
    if cached is not None and time.monotonic() - cached[0] < FLAG_CACHE_S:
        return cached[1]
    flagged = bool(rt.store.r.exists(_flag(wid, month_of(rt.clock.utcnow()))))
    _flags[wid] = (time.monotonic(), flagged)
    return flagged


def presence_allowed(rt: Runtime, wid: str, uid: str) -> bool:
    """Over budget: one presence broadcast per user per :data:`PRESENCE_EVERY_S`."""
    if not over_budget(rt, wid):
        return True
    return bool(rt.store.r.set(keys.ws(wid, f"presence_throttle:{uid}"), 1, nx=True, ex=PRESENCE_EVERY_S))


def _refused(out: Any) -> bool:
    """A frame refused as bad input (an ``error`` frame or an ``ack`` with ``ok: false``) is not
    metered: bad input changes nothing anywhere (contract 3.3), the meter included. The rate limit
    bounds what such frames can cost. Replies are compact JSON that starts with the frame's type."""
    body = out.get("body") if isinstance(out, dict) else None
    if not isinstance(body, str):
        return False
    head = body[:400]
    return head.startswith('{"type":"error"') or (head.startswith('{"type":"ack"') and '"ok":false' in head)


def metered(route: str, *, check_budget: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Meter a WebSocket route's handler: a frame in, its reply, its invocation and duration; with
    ``check_budget``, the flush it triggers also compares the month's estimate with the budget."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def handler(event: dict[str, Any], context: Any) -> Any:
            started = time.perf_counter()
            out = fn(event, context)
            ms = (time.perf_counter() - started) * 1000
            try:
                from collab.runtime import runtime

                rt = runtime()
                cid = str((event.get("requestContext") or {}).get("connectionId", ""))
                info = rt.connections.get(cid)
                if info is not None and not _refused(out):
                    memory = int(getattr(context, "memory_limit_in_mb", 0) or 0)
                    counts = {"frames_in": 1, "invocations": 1, "handler_ms": ms, "gb_ms": ms * memory / 1024}
                    if isinstance(out, dict) and out.get("body"):
                        counts["replies_out"] = 1
                    if route == "heartbeat":
                        counts["heartbeats"] = 1
                    add(rt, info.workspace_id, check_budget=check_budget, **counts)
            except Exception:  # noqa: BLE001 - metering never fails the route
                logger.warning("usage metering failed")
            return out

        return handler

    return wrap
