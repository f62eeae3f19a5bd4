"""Many registered connections at once, through the real registration script (``register.lua``)
and the same keys :meth:`collab.adapters.redis.store.Store.register` writes, pipelined 1,000 at a
time: 100,000 connections in a few seconds, for the sweeper's scale test and ``bench.sweeper_scale``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from collab.adapters.redis import keys
from collab.adapters.redis.store import CONN_TTL_S, Store

PIPELINE = 1000


@dataclass(frozen=True)
class Layout:
    workspaces: list[str]
    overdue: list[tuple[str, str]]  # (workspace id, connection id) past their deadline


def register_many(
    store: Store, *, total: int, per_workspace: int, overdue: int, now_ms: int, overdue_workspaces: int = 0
) -> Layout:
    """``total`` connections in workspaces of ``per_workspace``; ``overdue`` of them (spread over the
    first ``overdue_workspaces`` workspaces, or over all of them when 0) have a deadline in the past,
    the rest a minute ahead. Each connection has its own user."""
    n_ws = max(1, -(-total // per_workspace))
    wids = [str(uuid.uuid4()) for _ in range(n_ws)]
    spread = overdue_workspaces or n_ws
    late: set[int] = set()
    for i in range(overdue):  # round robin over the chosen workspaces
        ws, slot = i % spread, i // spread
        late.add(ws * per_workspace + slot)
    out: list[tuple[str, str]] = []
    store._load_scripts()
    pipe = store.r.pipeline(transaction=False)
    queued = 0
    for i in range(total):
        wid = wids[i // per_workspace]
        cid, uid = f"{uuid.uuid4().hex[:15]}=", f"user-{i}"
        deadline = now_ms - 1000 if i in late else now_ms + 60_000
        if i in late:
            out.append((wid, cid))
        pipe.evalsha(
            store._register.sha,
            2,
            keys.ws(wid, "conns"),
            keys.ws(wid, "hb"),
            cid,
            uid,
            deadline,
            0,
            0,
            CONN_TTL_S,
        )
        pipe.hset(keys.conn(cid), mapping={"wid": wid, "uid": uid, "name": uid, "connected_at": now_ms})
        pipe.expire(keys.conn(cid), CONN_TTL_S)
        pipe.zadd(keys.SWEEP, {f"{wid}|{cid}": deadline})
        queued += 1
        if queued == PIPELINE:
            pipe.execute()
            queued = 0
    if queued:
        pipe.execute()
    return Layout(wids, out)
