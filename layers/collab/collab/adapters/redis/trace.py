"""Redis side of the delivery tracer: per event, each connection's outcome (the last
:data:`KEEP` events of a workspace), removed members, and the seq each connection acknowledged.

Its keys share the workspace's hash tag with the connection registry (``conns``, ``joined``,
``hb``), so recording an event is one script: the registered connections that were not fan-out
targets are found in Redis, in the same step. Kept apart from :mod:`collab.adapters.redis.store`,
which the hot paths use, because only the tracer reads these keys.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from collab.adapters.redis import keys
from collab.adapters.redis.store import _s

KEEP = 100  # events traced per workspace: the same window as the replay history
_SCRIPT = (Path(__file__).parent / "scripts" / "trace.lua").read_text(encoding="utf-8")
_scripts: dict[int, Any] = {}
_lock = threading.Lock()


def _script(r: Any) -> Any:
    with _lock:
        script = _scripts.get(id(r))
        if script is None:
            script = _scripts[id(r)] = r.register_script(_SCRIPT)
        return script


def record(
    r: Any,
    wid: str,
    seq: int,
    type_: str,
    timestamp: str,
    outcomes: dict[str, str],
    *,
    sender: str | None = None,
    removed_user: str | None = None,
) -> None:
    _script(r)(
        keys=[keys.ws(wid, "conns"), keys.ws(wid, "trace"), keys.ws(wid, "removed")],
        args=[seq, json.dumps(outcomes), sender or "", KEEP, removed_user or "", type_, timestamp],
    )


def traces(r: Any, wid: str, seq: int | None = None) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Records, newest first (one with ``seq``), and removed user -> the seq that removed them."""
    p = r.pipeline(transaction=False)
    if seq is None:
        p.zrevrange(keys.ws(wid, "trace"), 0, -1)
    else:
        p.zrangebyscore(keys.ws(wid, "trace"), seq, seq)
    p.hgetall(keys.ws(wid, "removed"))
    raw, removed = p.execute()
    return [json.loads(_s(x)) for x in raw], {_s(k): int(v) for k, v in removed.items()}


def acknowledge(r: Any, wid: str, cid: str, seq: int) -> None:
    """The last seq a connection reports it applied (heartbeats may carry it)."""
    r.hset(keys.ws(wid, "acks"), cid, seq)


def connections(r: Any, wid: str) -> list[dict[str, Any]]:
    """Every registered connection: user, synced (a fan-out target), last heartbeat, acknowledged seq."""
    p = r.pipeline(transaction=False)
    p.hgetall(keys.ws(wid, "conns"))
    p.smembers(keys.ws(wid, "joined"))
    p.zrange(keys.ws(wid, "hb"), 0, -1, withscores=True)
    p.hgetall(keys.ws(wid, "acks"))
    conns, joined, hb, acks = p.execute()
    conns = {_s(k): _s(v) for k, v in conns.items()}
    joined = {_s(c) for c in joined}
    beats = {_s(c): int(score) for c, score in hb}
    acked = {_s(k): int(v) for k, v in acks.items()}
    stale = [c for c in acked if c not in conns]
    if stale:
        r.hdel(keys.ws(wid, "acks"), *stale)
    details = r.pipeline(transaction=False)
    for cid in conns:
        details.hmget(keys.conn(cid), "name", "connected_at")
    named = details.execute() if conns else []
    out = []
    for (cid, uid), (name, connected_at) in zip(conns.items(), named, strict=True):
        out.append(
            {
                "connection_id": cid,
                "user_id": uid,
                "display_name": _s(name) if name else uid,
                "connected_at_ms": int(connected_at) if connected_at else None,
                "last_heartbeat_ms": beats.get(cid),
                "synced": cid in joined,
                "last_ack_seq": acked.get(cid),
            }
        )
    return sorted(out, key=lambda c: (c["user_id"], c["connection_id"]))
