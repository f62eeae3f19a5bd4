"""Redis key layout (documented in docs/redis.md).

Every key of one workspace carries the hash tag ``{w:<id>}`` and every key of one user ``{u:<id>}``,
so each group lives in one cluster slot and can be changed by one script. Prefix ``collab:``.
"""

from __future__ import annotations

P = "collab:"


def ws(wid: str, name: str) -> str:
    """conns (hash cid->uid) | hb (zset cid->deadline ms) | modes (hash cid->'away', absent: active)
    | online (hash uid->announced conns) | joined (set of announced cids) | presence (hash uid->json)
    | leaving (hash uid->json: leaves held for the grace) | history (zset seq->event json)
    | members (hash uid->role, a cache of Postgres)
    | editing (hash uid->json {task_id, field, cid, exp}: v1.3 editing indicators, expiring)."""
    return f"{P}{{w:{wid}}}:{name}"


def user(uid: str, name: str) -> str:
    """rl (zset: frames in the last minute) | connrl (zset: connection attempts)
    | conns (hash cid->wid) | req:<request_id> (idempotency record)."""
    return f"{P}{{u:{uid}}}:{name}"


def conn(cid: str) -> str:
    """Hash wid, uid, name, connected_at: what a connection id stands for."""
    return f"{P}conn:{{{cid}}}"


def ticket(jti: str) -> str:
    return f"{P}ticket:{jti}"


SWEEP = f"{P}sweep"  # zset "<wid>|<cid>" -> deadline ms, for the scheduled sweeper
LEAVING = f"{P}leaving"  # zset wid -> earliest held leave (ms), the sweeper's backstop for them
# zset wid -> when its presence batch began (ms): the sweeper posts those nobody else did
PRESENCE_BATCHES = f"{P}presence_batches"
