"""Redis adapter: connection registry, presence, event history, rate limits, idempotency, tickets.

Multi-key changes of one workspace (or one user) run as one Lua script, atomic and one round trip.
Work that spans a workspace and a user goes in one pipeline: one round trip on a single node; in
cluster mode (``REDIS_CLUSTER=1``) redis-py splits it per node.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import redis.exceptions

from collab.adapters.redis import keys
from collab.errors import Unavailable

HISTORY_LEN = 100  # the latest 100 events of a workspace are replayed from Redis (contract 3.4)
# An event larger than this stays out of the history (sync replays it from Postgres): a history is
# at most 100 x 4 KB, whatever its tasks hold (a task with a 10,000-character description is ~40 KB).
HISTORY_EVENT_MAX_BYTES = 4096
HISTORY_TTL_MS = 24 * 3600 * 1000  # an idle workspace's history expires (sync falls back to Postgres)
CONN_TTL_S = 3 * 3600  # a connection lives at most 2 h at API Gateway; records outlive it a little
# An answered request_id's answer, the fast path for retries (a reconnect resends within seconds).
# The contract's hour (3.2) is kept by the ledger in Postgres (domain/ledger.py), which answers a
# later retry: an hour of full acks here would be ~230 MB of Redis at 100 edits/s.
REQUEST_TTL_S = 600
# A claim whose attempt died (container killed mid-request) frees itself after this; > Lambda timeout.
PENDING_TTL_S = 30
# A connection's first deadline: it is active until it says otherwise (collab.domain.presence.MODES).
FIRST_DEADLINE_MS = 60_000
# A large workspace's presence changes go out together at most this often (collab.domain.presence).
PRESENCE_BATCH_INTERVAL_MS = 500

_SCRIPTS = Path(__file__).parent / "scripts"  # the Lua scripts, one file each (their headers say what)


def _lua(*names: str) -> str:
    return "".join((_SCRIPTS / f"{name}.lua").read_text(encoding="utf-8") for name in names)


@dataclass(frozen=True, slots=True)
class ConnInfo:
    connection_id: str
    workspace_id: str
    user_id: str
    display_name: str
    connected_at_ms: int
    # The ticket that opened the connection, until its first frame has admitted it (recorded the
    # ticket as used in Postgres and checked the membership: collab.domain.admission). Empty after.
    ticket_jti: str = ""
    ticket_expires_at: int = 0

    @property
    def admitted(self) -> bool:
        return not self.ticket_jti


@dataclass(frozen=True, slots=True)
class Removed:
    connection_id: str
    user_id: str
    left: bool  # the user's last announced connection: they leave the workspace's presence
    display_name: str = ""
    # the user stays, but their status changed (their last active connection went): the new entry
    updated: dict[str, Any] | None = None
    entry: dict[str, Any] | None = None  # when they left: their presence entry as it was


@dataclass(frozen=True, slots=True)
class Beat:
    """What a heartbeat found: whether the connection is still registered, the workspace's latest
    seq in the history (0 if empty), the user's entry when the beat's mode changed their status,
    and the peers whose deadline had passed (removed)."""

    alive: bool
    latest_seq: int
    updated: dict[str, Any] | None
    removed: list[Removed]
    batch_due: bool = False  # the workspace's presence batch waited its interval: post it now


def _removed(flat: list[Any], start: int = 0) -> list[Removed]:
    out = []
    for i in range(start, len(flat), 4):
        left, updated = _s(flat[i + 2]), _s(flat[i + 3])
        entry = json.loads(left) if left else None
        name = str(entry.get("display_name") or "") if entry else ""
        out.append(
            Removed(
                _s(flat[i]),
                _s(flat[i + 1]),
                bool(left),
                name,
                json.loads(updated) if updated else None,
                entry,
            )
        )
    return out


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def connect_redis(url: str, *, cluster: bool = False, password: str | None = None) -> Any:
    """A client for ``redis://``, ``rediss://`` (TLS) or ``unix://``; cluster mode when asked."""
    # 2 s per connect and per command: a WebSocket route has 10 s in all (docs/deploy.md, "Time budget")
    opts: dict[str, Any] = {"socket_timeout": 2, "socket_connect_timeout": 2, "health_check_interval": 30}
    if password:
        opts["password"] = password
    if cluster:
        from redis.cluster import RedisCluster

        return RedisCluster.from_url(url, **opts)
    return redis.Redis.from_url(url, max_connections=64, **opts)


class Store:
    """All Redis state of the system. ``r`` is a redis-py client (standalone or cluster)."""

    def __init__(self, r: Any, *, cluster: bool = False) -> None:
        self.r = r
        self.cluster = cluster
        self._begin = r.register_script(_lua("begin"))
        self._register = r.register_script(_lua("register"))
        self._announce = r.register_script(_lua("announce"))
        self._remove = r.register_script(_lua("remove_connection", "remove_connections"))
        self._heartbeat = r.register_script(_lua("remove_connection", "heartbeat"))
        self._presence = r.register_script(_lua("remove_connection", "presence"))
        self._append = r.register_script(_lua("append"))
        self._leaves = r.register_script(_lua("leaves"))
        self._admit = r.register_script(_lua("admit"))
        self._presence_batch = r.register_script(_lua("presence_batch"))

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Every Redis error becomes :class:`Unavailable` (a contract error): down, timed out, out of
        memory (``noeviction`` refuses writes when full), read-only (a replica during failover),
        loading. NOSCRIPT is the one error a caller handles (it reloads the scripts)."""
        try:
            return fn(*args, **kwargs)
        except redis.exceptions.NoScriptError:
            raise
        except redis.exceptions.OutOfMemoryError as exc:
            raise Unavailable("cache is full") from exc
        except redis.exceptions.RedisError as exc:
            raise Unavailable("cache unavailable") from exc

    def _pipeline(self) -> Any:
        return self.r.pipeline(transaction=not self.cluster)

    def _batch(self, *ops: Any) -> list[Any]:
        """Run ``op(client)`` for each op: one pipelined round trip on a single node; in cluster mode
        one call each, because redis-py's cluster pipeline refuses scripts (and each op is one slot)."""
        if self.cluster:
            return [self._call(op, self.r) for op in ops]
        for attempt in (1, 2):
            p = self._pipeline()
            for op in ops:
                op(p)
            try:
                return list(self._call(p.execute))
            except redis.exceptions.NoScriptError:
                if attempt == 2:
                    raise
                self._load_scripts()  # a restarted Redis has forgotten them
        raise AssertionError("unreachable")

    def _evalsha(self, client: Any, script: Any, keys: list[str], args: list[Any]) -> Any:
        """A script call inside a batch. In a pipeline by sha, not through the Script object: redis-py
        would otherwise send SCRIPT EXISTS before every pipeline that holds a script, one more round
        trip. Outside one (cluster mode), the Script object loads itself on NOSCRIPT."""
        if self.cluster:
            return script(keys=keys, args=args, client=client)
        return client.evalsha(script.sha, len(keys), *keys, *args)

    def _load_scripts(self) -> None:
        for script in (
            self._begin,
            self._register,
            self._announce,
            self._remove,
            self._heartbeat,
            self._presence,
            self._append,
            self._leaves,
            self._admit,
            self._presence_batch,
        ):
            self._call(self.r.script_load, script.script)

    # -- tickets -----------------------------------------------------------------------------
    def consume_ticket(self, jti: str, ttl_ms: int) -> bool:
        """True the first time a ticket id is seen; a ticket works once."""
        return bool(self._call(self.r.set, keys.ticket(jti), 1, nx=True, px=max(1, ttl_ms)))

    # -- rate limits and idempotency ---------------------------------------------------------
    def begin(
        self,
        uid: str,
        *,
        bucket: str,
        limit: int,
        window_ms: int,
        now_ms: int,
        request_id: str | None = None,
    ) -> tuple[str, str]:
        """Count a frame (or a connection attempt) and, with ``request_id``, claim it.

        Returns ``("limited", retry_ms)``, ``("new", "")`` or ``("seen", "pending" | answer)``.
        """
        ks = [keys.user(uid, bucket)]
        if request_id is not None:
            ks.append(keys.user(uid, f"req:{request_id}"))
        member = f"{now_ms}-{secrets.token_hex(4)}"
        kind, value = self._call(self._begin, keys=ks, args=[now_ms, window_ms, limit, member, PENDING_TTL_S])
        return _s(kind), _s(value)

    def count_refusal(self, uid: str, bucket: str, window_ms: int) -> int:
        """Count a frame refused over budget; returns the refusals in the current window."""
        key = keys.user(uid, f"{bucket}:over")
        out = self._batch(lambda c: c.set(key, 0, nx=True, px=window_ms), lambda c: c.incr(key))
        return int(out[1])

    def finish(self, uid: str, request_id: str, answer: str) -> None:
        self._call(self.r.set, keys.user(uid, f"req:{request_id}"), answer, xx=True, ex=REQUEST_TTL_S)

    def abandon(self, uid: str, request_id: str) -> None:
        self._call(self.r.delete, keys.user(uid, f"req:{request_id}"))

    def request_answer(self, uid: str, request_id: str) -> str | None:
        v = self._call(self.r.get, keys.user(uid, f"req:{request_id}"))
        return None if v is None else _s(v)

    # -- connections -------------------------------------------------------------------------
    def register(
        self,
        info: ConnInfo,
        now_ms: int,
        deadline_ms: int | None = None,
        *,
        per_user: int = 0,
        per_workspace: int = 0,
    ) -> str | None:
        """Record a new connection: its identity, its workspace, the sweeper's index (scored by its
        deadline: ``now_ms`` + 60 s unless given, a new connection being active). Returns None, or
        the cap that refused it (``user``: live connections of the user to the workspace,
        ``workspace``: of the workspace), in which case nothing of it is left behind.

        It is not a fan-out target yet: API Gateway answers 410 to posts until ``$connect`` has
        returned, and a fan-out would take that for a dead peer and prune it. :meth:`announce`, at
        the connection's first frame (``sync``), makes it one."""
        wid, cid, uid = info.workspace_id, info.connection_id, info.user_id
        record = {"wid": wid, "uid": uid, "name": info.display_name, "connected_at": info.connected_at_ms}
        if info.ticket_jti:
            record.update(jti=info.ticket_jti, jti_exp=info.ticket_expires_at)
        ws_keys = [keys.ws(wid, "conns"), keys.ws(wid, "hb")]
        deadline = now_ms + FIRST_DEADLINE_MS if deadline_ms is None else deadline_ms
        out = self._batch(
            lambda c: self._evalsha(
                c, self._register, ws_keys, [cid, uid, deadline, per_user, per_workspace, CONN_TTL_S]
            ),
            lambda c: c.hset(keys.conn(cid), mapping=record),
            lambda c: c.expire(keys.conn(cid), CONN_TTL_S),
            lambda c: c.zadd(keys.SWEEP, {f"{wid}|{cid}": deadline}),
        )
        if out[0] == 1:
            return None
        self._forget(wid, [(cid, "")])
        return _s(out[0])

    def connection(self, cid: str) -> ConnInfo | None:
        raw = self._call(self.r.hgetall, keys.conn(cid))
        if not raw:
            return None
        d = {_s(k): _s(v) for k, v in raw.items()}
        return ConnInfo(
            cid,
            d["wid"],
            d["uid"],
            d.get("name", ""),
            int(d.get("connected_at", 0)),
            d.get("jti", ""),
            int(d.get("jti_exp", 0)),
        )

    def admitted(self, cid: str, display_name: str) -> bool:
        """The connection's first frame admitted it (:mod:`collab.domain.admission`): its name is
        known and its ticket is recorded as used for good. False when the connection is gone."""
        out = self._batch(lambda c: self._evalsha(c, self._admit, [keys.conn(cid)], [display_name]))
        return bool(out[0])

    def workspace_connections(self, wid: str) -> dict[str, str]:
        """connection id -> user id, for every registered connection of a workspace."""
        raw = self._call(self.r.hgetall, keys.ws(wid, "conns"))
        return {_s(k): _s(v) for k, v in raw.items()}

    def fanout_targets(self, wid: str, *, active_only: bool = False) -> list[str]:
        """The announced connections of a workspace: those that have completed ``$connect``; with
        ``active_only``, those not away (one round trip either way)."""
        if not active_only:
            return [_s(c) for c in self._call(self.r.smembers, keys.ws(wid, "joined"))]
        joined, away = self._batch(
            lambda c: c.smembers(keys.ws(wid, "joined")), lambda c: c.hkeys(keys.ws(wid, "modes"))
        )
        return [_s(c) for c in set(joined) - set(away)]

    def user_connections(self, uid: str) -> dict[str, str]:
        """connection id -> workspace id, for every announced connection of a user."""
        raw = self._call(self.r.hgetall, keys.user(uid, "conns"))
        return {_s(k): _s(v) for k, v in raw.items()}

    def _ws_keys(self, wid: str) -> list[str]:
        return [keys.ws(wid, n) for n in ("conns", "hb", "joined", "online", "presence", "modes")]

    def remove_connections(self, wid: str, cids: list[str]) -> list[Removed]:
        """Remove connections from every structure; returns those that were still registered."""
        if not cids:
            return []
        flat = self._call(self._remove, keys=self._ws_keys(wid), args=list(cids))
        removed = _removed(flat)
        self._forget(wid, [(r.connection_id, r.user_id) for r in removed] or [(c, "") for c in cids])
        return removed

    def _forget(self, wid: str, pairs: list[tuple[str, str]]) -> None:
        """Drop the per-connection records that live outside the workspace's slot."""
        ops: list[Any] = []
        for cid, uid in pairs:
            ops.append(lambda c, cid=cid: c.delete(keys.conn(cid)))
            if uid:
                ops.append(lambda c, cid=cid, uid=uid: c.hdel(keys.user(uid, "conns"), cid))
            ops.append(lambda c, cid=cid: c.zrem(keys.SWEEP, f"{wid}|{cid}"))
        self._batch(*ops)

    def heartbeat(
        self,
        info: ConnInfo,
        now_ms: int,
        deadlines: tuple[int, int],
        mode: str | None = None,
        limit: int = 100,
        batch_interval_ms: int = PRESENCE_BATCH_INTERVAL_MS,
    ) -> Beat:
        """Move a connection's deadline (``deadlines``: if active, if away; by the mode given, or
        the connection's own) and sweep the workspace's peers whose deadline has passed, in the same
        script. The sweeper's index follows, in the same round trip when the mode is given."""
        wid, cid = info.workspace_id, info.connection_id
        ws_keys = [*self._ws_keys(wid), keys.ws(wid, "history"), keys.ws(wid, "presence_batch")]
        args = [cid, now_ms, mode or "", deadlines[0], deadlines[1], limit, batch_interval_ms]
        script = lambda c: self._evalsha(c, self._heartbeat, ws_keys, args)  # noqa: E731
        refresh = lambda c: c.expire(keys.conn(cid), CONN_TTL_S)  # noqa: E731
        if mode:  # the deadline is known: one round trip
            deadline = deadlines[1] if mode == "away" else deadlines[0]
            index = lambda c: c.zadd(keys.SWEEP, {f"{wid}|{cid}": deadline}, xx=True)  # noqa: E731
            flat = self._batch(script, index, refresh)[0]
        else:  # a v1 heartbeat keeps the connection's mode: the script says which deadline it set
            flat = self._batch(script)[0]
            if int(flat[0]) == 1:
                set_at = int(flat[1])
                self._batch(lambda c: c.zadd(keys.SWEEP, {f"{wid}|{cid}": set_at}, xx=True), refresh)
        alive = int(flat[0]) == 1
        removed = _removed(flat, 5)
        if removed:
            self._forget(wid, [(r.connection_id, r.user_id) for r in removed])
        updated = _s(flat[3])
        return Beat(alive, int(flat[2]), json.loads(updated) if updated else None, removed, int(flat[4]) == 1)

    def connections_of(self, wids: list[str]) -> dict[str, dict[str, str]]:
        """Every registered connection of the given workspaces: workspace id -> {connection id -> user
        id} (one pipelined round trip; the sweeper's reconciliation of recent revocations)."""
        if not wids:
            return {}
        raw = self._batch(*[lambda c, w=w: c.hgetall(keys.ws(w, "conns")) for w in wids])
        return {w: {_s(k): _s(v) for k, v in r.items()} for w, r in zip(wids, raw, strict=True) if r}

    def due_for_sweep(self, now_ms: int, limit: int) -> dict[str, list[str]]:
        """Connections whose deadline has passed, grouped by workspace."""
        members = self._call(self.r.zrangebyscore, keys.SWEEP, "-inf", now_ms, start=0, num=limit)
        out: dict[str, list[str]] = {}
        for m in members:
            wid, _, cid = _s(m).partition("|")
            out.setdefault(wid, []).append(cid)
        return out

    def sweep_workspace(self, wid: str, cids: list[str], now_ms: int) -> list[Removed]:
        """Remove those of ``cids`` whose deadline in the workspace has still passed."""
        scores = self._call(self.r.zmscore, keys.ws(wid, "hb"), cids)
        stale = [c for c, s in zip(cids, scores, strict=True) if s is None or s <= now_ms]
        later = {f"{wid}|{c}": s for c, s in zip(cids, scores, strict=True) if s is not None and s > now_ms}
        if later:  # the index fell behind the connection's own deadline: put it right
            self._call(self.r.zadd, keys.SWEEP, later, xx=True)
        return self.remove_connections(wid, stale) if stale else []

    # -- presence ----------------------------------------------------------------------------
    def announce(self, info: ConnInfo, entry: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        """Make a connection a fan-out target and part of its user's presence (its first sync).

        Returns 1 when its user just came online, 2 when they did but their leave was still held
        (with the held entry: peers still show it), 0 if they already were online, -1 if the
        connection is no longer registered."""
        wid, cid, uid = info.workspace_id, info.connection_id, info.user_id
        ws_keys = [
            keys.ws(wid, "joined"),
            keys.ws(wid, "online"),
            keys.ws(wid, "presence"),
            keys.ws(wid, "conns"),
            keys.ws(wid, "leaving"),
            keys.ws(wid, "modes"),
        ]
        out = self._batch(
            lambda c: self._evalsha(c, self._announce, ws_keys, [cid, uid, json.dumps(entry)]),
            lambda c: c.hset(keys.user(uid, "conns"), cid, wid),
            lambda c: c.expire(keys.user(uid, "conns"), CONN_TTL_S),
        )
        result, held = int(out[0][0]), _s(out[0][1])
        if result == -1:  # removed meanwhile: do not leave it in the user's index
            self._call(self.r.hdel, keys.user(uid, "conns"), cid)
        return result, json.loads(held) if held else None

    def hold_leave(self, wid: str, uid: str, entry: dict[str, Any], now_ms: int) -> None:
        """Hold a user's leave for the grace; the sweeper's index (``collab:leaving``) backs up
        whoever was to flush it."""
        held = json.dumps({**entry, "held_ms": now_ms})
        self._batch(
            lambda c: self._evalsha(c, self._leaves, [keys.ws(wid, "leaving")], ["hold", uid, held]),
            lambda c: c.zadd(keys.LEAVING, {wid: now_ms}, nx=True),
        )

    def take_leaves(self, wid: str, due_ms: int) -> list[tuple[str, dict[str, Any]]]:
        """Remove and return the leaves held since ``due_ms`` or earlier: (user id, entry)."""
        earliest, flat = self._call(self._leaves, keys=[keys.ws(wid, "leaving")], args=["take", due_ms])
        if int(earliest):
            self._call(self.r.zadd, keys.LEAVING, {wid: int(earliest)})
        else:
            self._call(self.r.zrem, keys.LEAVING, wid)
        return [(_s(flat[i]), json.loads(_s(flat[i + 1]))) for i in range(0, len(flat), 2)]

    def leaves_held(self, wid: str) -> bool:
        """Whether any leave is held in the workspace."""
        return bool(self._call(self.r.exists, keys.ws(wid, "leaving")))

    def workspaces_with_leaves(self, due_ms: int, limit: int = 500) -> list[str]:
        """Workspaces holding a leave since ``due_ms`` or earlier (the sweeper's backstop)."""
        return [
            _s(w) for w in self._call(self.r.zrangebyscore, keys.LEAVING, "-inf", due_ms, start=0, num=limit)
        ]

    def set_presence(
        self, info: ConnInfo, status: str, viewing: str | None, now_ms: int, deadline_ms: int
    ) -> tuple[dict[str, Any] | None, bool]:
        """A connection's presence update: its status is its mode (and moves its deadline); the
        user's status follows all their connections. Returns (the entry, or None when the user is
        not online; whether it changed)."""
        wid, cid = info.workspace_id, info.connection_id
        out, changed = self._batch(
            lambda c: self._evalsha(
                c, self._presence, self._ws_keys(wid), [cid, status, json.dumps(viewing), now_ms, deadline_ms]
            ),
            lambda c: c.zadd(keys.SWEEP, {f"{wid}|{cid}": deadline_ms}, xx=True),
        )[0]
        return (None if not out else json.loads(_s(out))), bool(int(changed))

    def batch_presence(
        self,
        wid: str,
        changes: list[tuple[str, str, dict[str, Any]]],
        now_ms: int,
        *,
        threshold: int,
        interval_ms: int = PRESENCE_BATCH_INTERVAL_MS,
    ) -> tuple[str, list[tuple[str, str, dict[str, Any]]]]:
        """Presence changes (type, user id, entry) of a workspace with ``threshold`` or more synced
        connections join its batch (``presence_batch.lua``); without ``changes``, only take a batch
        that is due. Returns (``direct``: a small workspace, post them as before | ``held`` |
        ``none`` | ``flush``: post these, the batch's changes, now; the changes)."""
        args: list[Any] = [threshold, now_ms, interval_ms]
        for type_, uid, data in changes:
            args += [uid, f"{type_}|{json.dumps(data, separators=(',', ':'))}"]
        ks = [keys.ws(wid, "joined"), keys.ws(wid, "presence_batch"), keys.ws(wid, "large")]
        flat = self._call(self._presence_batch, keys=ks, args=args)
        mode = _s(flat[0])
        if mode == "held-new":  # the sweeper's backstop, should no later change or heartbeat post it
            self._call(self.r.zadd, keys.PRESENCE_BATCHES, {wid: now_ms}, nx=True)
            return "held", []
        if mode != "flush":
            return mode, []
        self._call(self.r.zrem, keys.PRESENCE_BATCHES, wid)
        out = []
        for i in range(1, len(flat), 2):
            type_, _, raw = _s(flat[i + 1]).partition("|")
            out.append((type_, _s(flat[i]), json.loads(raw)))
        return "flush", out

    def workspaces_with_batches(self, due_ms: int, limit: int = 500) -> list[str]:
        """Workspaces whose presence batch began at ``due_ms`` or earlier (the sweeper posts them)."""
        raw = self._call(self.r.zrangebyscore, keys.PRESENCE_BATCHES, "-inf", due_ms, start=0, num=limit)
        return [_s(w) for w in raw]

    def presence(self, wid: str) -> dict[str, dict[str, Any]]:
        raw = self._call(self.r.hgetall, keys.ws(wid, "presence"))
        return {_s(k): json.loads(_s(v)) for k, v in raw.items()}

    # -- editing indicators (v1.3): Redis only; each entry carries its own expiry -----------------
    def presence_and_editing(
        self, wid: str, now_ms: int
    ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """The presence entries and the editing indicators not yet expired, in one round trip."""
        raw, editing = self._batch(
            lambda c: c.hgetall(keys.ws(wid, "presence")), lambda c: c.hgetall(keys.ws(wid, "editing"))
        )
        entries = {_s(k): json.loads(_s(v)) for k, v in raw.items()}
        live = {_s(k): json.loads(_s(v)) for k, v in editing.items()}
        return entries, {uid: e for uid, e in live.items() if int(e["exp"]) > now_ms}

    def set_editing(self, wid: str, uid: str, indicator: dict[str, Any], ttl_ms: int) -> None:
        """A user's indicator (``task_id``, ``field``, ``cid`` that set it, ``exp`` ms). The hash
        expires with its latest indicator, so an abandoned one leaves nothing behind."""
        k = keys.ws(wid, "editing")
        self._batch(lambda c: c.hset(k, uid, json.dumps(indicator)), lambda c: c.pexpire(k, ttl_ms))

    def clear_editing(self, wid: str, cids: set[str]) -> list[str]:
        """Drop the indicators set by these connections; returns the users whose indicator went."""
        k = keys.ws(wid, "editing")
        raw = self._call(self.r.hgetall, k)
        gone = sorted(_s(u) for u, v in raw.items() if json.loads(_s(v)).get("cid") in cids)
        if gone:
            self._call(self.r.hdel, k, *gone)
        return gone

    # -- history and fan-out -----------------------------------------------------------------
    def append_event(
        self, wid: str, seq: int, event_json: str, *, answer: tuple[str, str, str] | None = None
    ) -> list[str]:
        """Store an event in the workspace's history and return its fan-out targets.

        With ``answer`` = (user id, request id, ack json), the request's answer is recorded in the
        same round trip, so a mutation costs two Redis round trips in all: claim, then this.
        """
        history_keys = [keys.ws(wid, "history"), keys.ws(wid, "joined")]
        bounds = [HISTORY_LEN, HISTORY_EVENT_MAX_BYTES, HISTORY_TTL_MS]
        if answer is None:
            members = self._call(self._append, keys=history_keys, args=[seq, event_json, *bounds])
        else:
            uid, rid, value = answer
            members = self._batch(
                lambda c: c.set(keys.user(uid, f"req:{rid}"), value, xx=True, ex=REQUEST_TTL_S),
                lambda c: self._evalsha(c, self._append, history_keys, [seq, event_json, *bounds]),
            )[1]
        return [_s(m) for m in members]

    def history(self, wid: str, after_seq: int) -> list[tuple[int, str]]:
        raw = self._call(
            self.r.zrangebyscore, keys.ws(wid, "history"), f"({after_seq}", "+inf", withscores=True
        )
        return [(int(score), _s(member)) for member, score in raw]

    # -- housekeeping ------------------------------------------------------------------------
    def drop_workspace(self, wid: str) -> None:
        names = (
            "history",
            "presence",
            "online",
            "joined",
            "modes",
            "leaving",
            "editing",
            "presence_batch",
            "large",
        )
        self._call(self.r.delete, *[keys.ws(wid, n) for n in names])

    def ping(self) -> bool:
        return bool(self._call(self.r.ping))
