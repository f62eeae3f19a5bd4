"""The Python twin of ``web/collab-client.js``: connection, sync, ordering and retries, for load and
storm tests (``tests/e2e/test_reconnect_storm.py``) and the end-to-end benchmark (``bench.e2e``).

It speaks to the local gateway (``collab dev`` or ``collab_dev.emulator.local_gateway``) over real
WebSockets and the HTTP API, exactly as the browser client does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# web/collab-client.js's reconnect: a random delay in [0, min(cap, base * 2^attempt)].
BACKOFF_BASE_S = 0.25
FIRST_RETRY_S = 0.1  # the first retry comes within 100 ms (collab-client.js firstRetryMs)
GAP_GRACE_S = 0.3  # a missing seq may take 300 ms before a sync asks for it (gapGraceMs)
BACKOFF_CAP_S = 10.0
BACKOFF_MAX_ATTEMPT = 20
HEARTBEAT_S = 30.0  # the contract's heartbeat period
HEARTBEAT_TIMEOUT_S = 10.0  # no heartbeat.ack within this: the socket is dead even if it looks open
OPEN_TIMEOUT_S = 10.0
RETRYABLE_ACK = ("rate_limited", "internal")
MAX_ACK_RETRIES = 3


def now_ns() -> int:
    """CLOCK_MONOTONIC: one clock for every process on the machine, so it can cross processes."""
    return time.monotonic_ns()


def backoff_delay(attempt: int, rng: random.Random | None = None) -> float:
    """Full jitter, exactly as ``web/collab-client.js`` ``_scheduleReconnect``: a herd of clients
    dropped together spreads its retries over the whole window instead of retrying in lockstep."""
    ceiling = FIRST_RETRY_S if attempt == 0 else min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt)
    return (rng or random).random() * ceiling


# -- the Python twin of web/collab-client.js (connection, sync, order) ---------------------------
class HttpError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:200]}")
        self.status = status


class Denied(Exception):
    """401/403/404 on the ticket request: a new ticket will not help (the client stops)."""


@dataclass
class Reconnect:
    """One reconnect, from the moment the connection was lost to the sync reply that made it live."""

    down_ns: int
    attempts: int = 0  # ticket requests made
    delay_s: float = 0.0  # backoff slept, in total
    refused: list[int] = field(default_factory=list)  # handshake statuses refused on the way
    attempt_ns: int = 0  # start of the attempt that succeeded (after its backoff)
    ticket_ns: int = 0  # its ticket arrived
    open_ns: int = 0  # its socket opened
    synced_ns: int = 0  # the sync reply that made it live

    @property
    def total_ms(self) -> float:
        return (self.synced_ns - self.down_ns) / 1e6

    @property
    def work_ms(self) -> float:
        """Ticket + handshake + sync of the attempt that succeeded: what the server costs."""
        return (self.synced_ns - self.attempt_ns) / 1e6


@dataclass
class _Op:
    frame: dict[str, Any]
    future: asyncio.Future[dict[str, Any]]
    sent: bool = False
    retries: int = 0


class BoardClient:
    """What ``web/collab-client.js`` does with the connection, in Python, for load and storm tests.

    Each attempt gets a fresh single-use ticket (``POST /api/ws-tickets``) and opens its URL; the
    first frame is ``sync`` with the last seq applied. A connection that dies is retried after
    :func:`backoff_delay` (``attempt`` reset once a sync completes); 401/403/404 on the ticket stop
    it. Task events are applied only when their version is higher than the one held; ``last_seq``
    moves along contiguous seqs (an ``ack``'s seq counts) and a jump sends ``sync``; a sync reply
    whose ``seq`` is beyond its last event is followed by another sync. Mutations carry a
    ``request_id``; unanswered ones are re-sent after the next sync; ``rate_limited`` and ``internal``
    are retried up to three times after ``retry_after_ms``. The board is not rendered: ``tasks`` is
    the server state the client holds.

    v1.3: ``update_task(..., seen_version=)`` asks for a conflict receipt (the ack's ``overwrote``),
    ``undo(seq)`` / ``redo(seq)`` revert or re-apply one's own change, ``set_editing(task_id, field)``
    shows an editing indicator (None: blur). ``overwritten`` collects the ``task.overwritten``
    frames received, ``editing`` the indicators peers show (user id -> ``{task_id, field,
    expires_at}``), from ``presence.editing`` frames and sync replies.

    Hooks (all optional, called on the client's loop): ``on_event(client, frame, recv_ns)`` for
    every live workspace event, ``before_sync(client)`` just before a ``sync`` is sent,
    ``on_live(client, reconnect_or_None)`` when a sync completes and the client is live.
    """

    def __init__(
        self,
        http: Any,
        api_base: str,
        *,
        user_id: str,
        token: str,
        workspace_id: str,
        tasks: dict[str, dict[str, Any]] | None = None,
        last_seq: int | None = None,
        user_agent: str = "collab-bench",
        rng: random.Random | None = None,
        heartbeat_s: float = HEARTBEAT_S,
        gap_grace_s: float = GAP_GRACE_S,
    ) -> None:
        self.http, self.api_base = http, api_base
        self.user_id, self.token, self.workspace_id = user_id, token, workspace_id
        self.tasks: dict[str, dict[str, Any]] = dict(tasks or {})
        self.last_seq = last_seq
        self.user_agent = user_agent
        self.rng = rng or random.Random()
        self.heartbeat_s = heartbeat_s
        # 0: a seq gap is synced at once, as web/collab-client.js does. > 0: an experiment - wait
        # this long for the missing seqs (concurrent fan-outs reorder events) before syncing.
        self.gap_grace_s = gap_grace_s
        self._ahead: set[int] = set()
        self._gap_timer: asyncio.TimerHandle | None = None
        self.state = "idle"
        self.live = asyncio.Event()
        self.attempt = 0
        self.reconnects: list[Reconnect] = []
        self.presence: dict[str, dict[str, Any]] = {}
        self.overwritten: list[dict[str, Any]] = []  # v1.3: task.overwritten frames received
        self.editing: dict[str, dict[str, Any]] = {}  # v1.3: user id -> what they are editing
        self.counts: Counter[str] = Counter()  # frames by type, refusals, failures
        self.on_event: Callable[[BoardClient, dict[str, Any], int], None] | None = None
        self.before_sync: Callable[[BoardClient], None] | None = None
        self.on_live: Callable[[BoardClient, Reconnect | None], None] | None = None
        self._ws: Any = None
        self._pending: dict[str, _Op] = {}
        self._sync_in_flight = False
        self._sync_again = False
        self._sync_since: int | None = None
        self._down: Reconnect | None = None
        self._down_ns: int | None = None
        self._hb_acked = asyncio.Event()
        self._stopped = False
        self._task: asyncio.Task[None] | None = None

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self.run())
        return self._task

    async def stop(self) -> None:
        self._stopped = True
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, 10)

    def drop(self) -> bool:
        """Kill the socket without a close handshake (a lost network): the gateway sees 1006."""
        ws = self._ws
        if ws is None or self.state != "live":
            return False
        self._down_ns = now_ns()
        ws.transport.abort()
        return True

    async def run(self) -> None:
        first = True
        try:
            while not self._stopped:
                if not first:
                    delay = backoff_delay(self.attempt, self.rng)
                    self.attempt = min(self.attempt + 1, BACKOFF_MAX_ATTEMPT)
                    if self._down is not None:
                        self._down.delay_s += delay
                    await asyncio.sleep(delay)
                    if self._stopped:
                        break
                first = False
                await self._connect_once()
        except Denied:
            self.state = "denied"
        finally:
            self.live.clear()
            if self.state != "denied":
                self.state = "stopped"

    # -- HTTP ----------------------------------------------------------------------------------
    async def api(self, method: str, path: str, body: Any = None) -> Any:
        import aiohttp

        async with self.http.request(
            method,
            f"{self.api_base}{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=aiohttp.ClientTimeout(total=30),
        ) as resp:
            text = await resp.text()
            if resp.status >= 300:
                raise HttpError(resp.status, text)
            return json.loads(text) if text else None

    # -- connecting ----------------------------------------------------------------------------
    async def _connect_once(self) -> None:
        import aiohttp
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidHandshake, InvalidStatus, WebSocketException

        self.state = "connecting"
        started = now_ns()
        if self._down is not None:
            self._down.attempts += 1
        try:
            ticket = await self.api("POST", "/ws-tickets", {"workspace_id": self.workspace_id})
        except HttpError as exc:
            if exc.status in (401, 403, 404):
                raise Denied(str(exc)) from exc
            self.counts["ticket_failed"] += 1
            return
        except (aiohttp.ClientError, TimeoutError, OSError):
            self.counts["ticket_failed"] += 1
            return
        ticketed = now_ns()
        try:
            ws = await connect(
                ticket["url"],
                compression=None,  # API Gateway does not negotiate permessage-deflate
                proxy=None,
                ping_interval=None,  # the protocol's heartbeat keeps the connection alive
                open_timeout=OPEN_TIMEOUT_S,
                max_size=2**20,
                user_agent_header=self.user_agent,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            self.counts[f"refused_{status}"] += 1
            if self._down is not None:
                self._down.refused.append(status)
            return
        except (InvalidHandshake, WebSocketException, TimeoutError, OSError):
            self.counts["handshake_failed"] += 1
            return
        self.counts["connected"] += 1
        if self._down is not None:
            self._down.attempt_ns, self._down.ticket_ns, self._down.open_ns = started, ticketed, now_ns()
        await self._session(ws)

    async def _session(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        self._ws = ws
        self.state = "syncing"
        self._sync_in_flight = self._sync_again = False
        self._ahead.clear()
        beat = asyncio.create_task(self._heartbeat(ws))
        try:
            await self._send_sync()
            async for raw in ws:
                received = now_ns()
                try:
                    frame = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(frame, dict):
                    await self._on_frame(frame, received)
        except ConnectionClosed:
            pass
        finally:
            beat.cancel()
            self._ws = None
            self.live.clear()
            for op in self._pending.values():
                op.sent = False  # unanswered: re-sent after the next sync
            if not self._stopped:
                self.state = "offline"
                if self._down is None:
                    self._down = Reconnect(self._down_ns or now_ns())
            self._down_ns = None

    async def _heartbeat(self, ws: Any) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            self._hb_acked.clear()
            if not await self._send({"action": "heartbeat"}):
                return
            try:
                await asyncio.wait_for(self._hb_acked.wait(), HEARTBEAT_TIMEOUT_S)
            except TimeoutError:
                self.counts["heartbeat_timeout"] += 1
                await ws.close(4001, "no heartbeat.ack")
                return

    async def _send(self, frame: dict[str, Any]) -> bool:
        ws = self._ws
        if ws is None:
            return False
        try:
            await ws.send(json.dumps(frame))
        except Exception:
            return False  # the read loop sees the close and reconnects
        return True

    # -- sync ----------------------------------------------------------------------------------
    async def _send_sync(self) -> None:
        if self._sync_in_flight:
            self._sync_again = True
            return
        if self.before_sync is not None:
            self.before_sync(self)
        if await self._send({"action": "sync", "since": self.last_seq}):
            self._sync_in_flight = True
            self._sync_since = self.last_seq

    async def _on_sync(self, data: dict[str, Any]) -> None:
        since, before = self._sync_since, self.last_seq
        self.presence = {p["user"]["id"]: p for p in data.get("presence") or []}
        self.editing = {uid: p["editing"] for uid, p in self.presence.items() if p.get("editing")}
        full = since is None or bool(data.get("resync"))
        if full:
            self.last_seq = int(data["seq"])
            try:
                await self._load_all()
            except Exception:
                self.last_seq = before
                self._sync_in_flight = False
                self.counts["load_failed"] += 1
                if self._ws is not None:
                    await self._ws.close(4002, "load failed")
                return
        else:
            for ev in data.get("events") or []:
                await self._apply_event(ev, None)
        self._sync_in_flight = False
        behind = self.last_seq is not None and self.last_seq < int(data["seq"])
        if behind and not full and self.last_seq == before:
            self.last_seq = None  # the reply made no progress (should not happen): reload
            await self._send_sync()
            return
        if behind or self._sync_again:
            self._sync_again = False
            await self._send_sync()  # a paged replay, or a gap appeared meanwhile
            return
        await self._go_live()

    async def _go_live(self) -> None:
        self.attempt = 0
        self.state = "live"
        self.live.set()
        reconnect, self._down = self._down, None
        if reconnect is not None:
            reconnect.synced_ns = now_ns()
            self.reconnects.append(reconnect)
        if self.on_live is not None:
            self.on_live(self, reconnect)
        for op in list(self._pending.values()):
            if not op.sent:
                await self._send_op(op)

    async def _load_all(self) -> None:
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = f"?limit=100&cursor={cursor}" if cursor else "?limit=100"
            page = await self.api("GET", f"/workspaces/{self.workspace_id}/tasks{query}")
            items += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        fresh = {t["id"]: t for t in items}
        for tid, held in self.tasks.items():
            if tid not in fresh or held["version"] > fresh[tid]["version"]:
                fresh[tid] = held
        self.tasks = fresh

    # -- frames --------------------------------------------------------------------------------
    async def _on_frame(self, frame: dict[str, Any], received: int) -> None:
        kind = frame.get("type")
        self.counts[str(kind) if kind else "untyped"] += 1
        data = frame.get("data") or {}
        if kind == "heartbeat.ack":
            self._hb_acked.set()
        elif kind == "sync":
            await self._on_sync(data)
        elif kind == "ack":
            await self._on_ack(data)
        elif kind == "task.overwritten":  # v1.3: not a workspace event (no seq): a notice
            self.overwritten.append(frame)
            self._apply_task(data["task"])
        elif kind == "presence.editing":
            if data.get("editing"):
                self.editing[data["user"]["id"]] = data["editing"]
            else:
                self.editing.pop(data["user"]["id"], None)
        elif isinstance(kind, str) and kind.startswith(("task.", "member.")):
            await self._apply_event(frame, received)
        elif kind in ("presence.joined", "presence.updated"):
            self.presence[data["user"]["id"]] = data
        elif kind == "presence.left":
            self.presence.pop(data["user"]["id"], None)
            self.editing.pop(data["user"]["id"], None)
        elif kind is None and frame.get("message") == "Internal server error":
            self.counts["internal_server_error"] += 1

    async def _apply_event(self, frame: dict[str, Any], received: int | None) -> None:
        """``received`` is None for a replayed event (from a sync reply)."""
        if frame["type"].startswith("task."):
            self._apply_task(frame["data"]["task"])
        seq = frame.get("seq")
        if received is None:
            if self.last_seq is None or (isinstance(seq, int) and seq > self.last_seq):
                self.last_seq = seq
            return
        if self.on_event is not None:
            self.on_event(self, frame, received)
        await self._advance(seq)

    async def _advance(self, seq: Any) -> None:
        if not isinstance(seq, int) or self.last_seq is None:
            return
        if seq == self.last_seq + 1:
            self.last_seq = seq
            while self.last_seq + 1 in self._ahead:  # only filled with a gap grace
                self.last_seq += 1
            self._ahead = {s for s in self._ahead if s > self.last_seq}
        elif seq > self.last_seq + 1:
            self.counts["gap"] += 1
            if not self.gap_grace_s:
                await self._send_sync()  # what web/collab-client.js does
                return
            self._ahead.add(seq)
            if self._gap_timer is None:
                self._gap_timer = asyncio.get_running_loop().call_later(self.gap_grace_s, self._gap_due)

    def _gap_due(self) -> None:
        """The grace is over: sync only if the missing seqs did not arrive meanwhile."""
        self._gap_timer = None
        if self._ahead and self.state == "live":
            self.counts["gap_synced"] += 1
            self._ahead.clear()
            asyncio.ensure_future(self._send_sync())  # noqa: RUF006 - the reply is handled by the read loop

    def _apply_task(self, task: dict[str, Any]) -> None:
        held = self.tasks.get(task["id"])
        if held is None or task["version"] > held["version"]:
            self.tasks[task["id"]] = task

    # -- mutations -----------------------------------------------------------------------------
    async def update_presence(self, status: str = "active", viewing: str | None = None) -> bool:
        """``presence.update`` now if live (the route has no reply); False when not sent."""
        if self.state != "live":
            return False
        return await self._send({"action": "presence.update", "status": status, "viewing": viewing})

    def update_task(
        self, task_id: str, changes: dict[str, Any], *, seen_version: int | None = None
    ) -> asyncio.Future[dict[str, Any]]:
        """Send ``task.update`` now if live, else queue it; the future gets the ``ack``'s data. With
        ``seen_version`` (v1.3), the ack carries the conflict receipt."""
        frame: dict[str, Any] = {"action": "task.update", "task_id": task_id, "changes": changes}
        if seen_version is not None:
            frame["seen_version"] = seen_version
        return self._mutate(frame)

    def undo(self, seq: int) -> asyncio.Future[dict[str, Any]]:
        """v1.3 ``task.undo`` of one's own change at ``seq``; the future gets the ``ack``'s data."""
        return self._mutate({"action": "task.undo", "seq": seq})

    def redo(self, seq: int) -> asyncio.Future[dict[str, Any]]:
        return self._mutate({"action": "task.redo", "seq": seq})

    async def set_editing(self, task_id: str | None, field: str = "title") -> bool:
        """v1.3: show peers what this user is editing (None: stop, as on blur)."""
        editing = None if task_id is None else {"task_id": task_id, "field": field}
        return await self._send(
            {"action": "presence.update", "status": "active", "viewing": task_id, "editing": editing}
        )

    def _mutate(self, frame: dict[str, Any]) -> asyncio.Future[dict[str, Any]]:
        rid = str(uuid.uuid4())
        frame = {"request_id": rid, **frame}
        op = _Op(frame, asyncio.get_running_loop().create_future())
        self._pending[rid] = op
        if self.state == "live":
            asyncio.ensure_future(self._send_op(op))  # noqa: RUF006 - op keeps its own future
        return op.future

    async def _send_op(self, op: _Op) -> None:
        op.sent = await self._send(op.frame)

    async def _on_ack(self, data: dict[str, Any]) -> None:
        op = self._pending.get(str(data.get("request_id")))
        if op is None:
            return  # a repeat's answer for something already settled
        if data.get("ok"):
            del self._pending[op.frame["request_id"]]
            if data.get("task"):
                self._apply_task(data["task"])
            await self._advance(data.get("seq"))
            if not op.future.done():
                op.future.set_result(data)
            return
        error = data.get("error") or {}
        self.counts[f"ack_{error.get('code')}"] += 1
        if error.get("code") in RETRYABLE_ACK and op.retries < MAX_ACK_RETRIES:
            op.retries += 1
            op.sent = False
            wait = (error.get("retry_after_ms") or 1000 * op.retries) / 1000
            asyncio.get_running_loop().call_later(wait, self._retry, op)
            return
        del self._pending[op.frame["request_id"]]
        if error.get("task"):
            self._apply_task(error["task"])
        if not op.future.done():
            op.future.set_result(data)

    def _retry(self, op: _Op) -> None:
        if self.state == "live" and not op.sent and op.frame["request_id"] in self._pending:
            asyncio.ensure_future(self._send_op(op))  # noqa: RUF006 - op keeps its own future
