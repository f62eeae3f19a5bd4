"""``heartbeat``: move the connection's deadline by its mode, sweep dead peers, and answer only when
there is something to say.

A v1 heartbeat (``{"action": "heartbeat"}``) is answered ``heartbeat.ack`` every time, as before. A
v1.2 heartbeat carries the client's last applied ``seq`` (and its ``mode``, ``active`` or ``away``);
it is answered only when the answer carries something: the client asked (``probe``, when it has
heard nothing for a while and wants to know the socket is alive, or comes back from away: the answer
then carries the presence list too, which away tabs are not sent changes of), or it is behind (the
workspace's latest seq is past its ``seq``: the answer carries the latest, and the client syncs).
Otherwise the route returns no body, and API Gateway sends nothing: no billed message out. Errors
and a gone connection are answered in every case.
A heartbeat's ``seq`` is also recorded for the delivery tracer (docs/operations.md).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from collab.adapters.redis import trace
from collab.domain import presence
from collab.errors import CollabError, RateLimited
from collab.ws.context import WINDOW_MS, connection_id, connection_info, endpoint, error, gone, reply

if TYPE_CHECKING:
    from collab.adapters.redis.store import ConnInfo
    from collab.runtime import Runtime

MODES = ("active", "away")


def beat_fields(body: Any) -> tuple[bool, int | None, str | None, bool]:
    """(v1.2: carries ``seq``; the seq; the mode; probe) from a heartbeat's body. Fields of the
    wrong type count as absent: a heartbeat is never refused (without the pydantic models, which
    this route does not load)."""
    try:
        obj = json.loads(body) if body else {}
    except (ValueError, TypeError, RecursionError):
        obj = {}
    if not isinstance(obj, dict):
        obj = {}
    quiet = "seq" in obj
    seq = obj.get("seq")
    seq = seq if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0 else None
    mode = obj.get("mode") if obj.get("mode") in MODES else None
    return quiet, seq, mode, obj.get("probe") is True


def _budget(rt: Runtime, info: ConnInfo) -> None:
    """Heartbeats have their own small budget per connection (one every 30 s is the protocol), so
    they cannot be used to invoke Lambda for free."""
    limit = rt.settings.limits.heartbeats_per_minute
    kind, retry = rt.store.begin(
        info.user_id,
        bucket=f"hb:{info.connection_id}",
        limit=limit,
        window_ms=WINDOW_MS,
        now_ms=rt.clock.now_ms(),
    )
    if kind == "limited":
        raise RateLimited(f"rate limit: {limit} heartbeats per minute", retry_after_ms=int(retry))


def handle(rt: Runtime, event: dict[str, Any], *, budget: bool = True) -> dict[str, Any]:
    cid = connection_id(event)
    gateway = rt.gateway_for(endpoint(event))
    quiet, seq, mode, probe = beat_fields(event.get("body"))
    try:
        info = connection_info(rt, cid)
        if info is not None and budget:
            _budget(rt, info)
        beat = presence.heartbeat(rt, gateway, info, mode) if info is not None else None
    except CollabError as exc:  # Redis down: answered (internal), the connection stays
        return error(rt, exc, rt.connections.get(cid))
    if info is None or beat is None or not beat.alive:
        return gone(rt, gateway, cid)
    assert info is not None
    if seq is not None:
        _acknowledge(rt, info.workspace_id, cid, seq)
    behind = seq is not None and beat.latest_seq > seq
    if quiet and not probe and not behind:
        return {"statusCode": 200}  # no body: API Gateway sends nothing
    data: dict[str, Any] = {"seq": beat.latest_seq} if quiet else {}
    if quiet and probe:  # a tab coming back (or silent a long while): away tabs got no presence.updated
        try:
            data["presence"], more = presence.snapshot_within(rt, info.workspace_id)
            if more:
                data["more_presence"] = True
        except CollabError:
            pass  # the answer is what matters: the socket is alive
    return reply(rt, "heartbeat.ack", data, info)


def _acknowledge(rt: Runtime, wid: str, cid: str, seq: int) -> None:
    """The client's last applied seq, for the delivery tracer."""
    if seq >= 2**63:  # beyond Redis' integers: not a seq this server handed out
        return
    try:
        trace.acknowledge(rt.store.r, wid, cid, seq)
    except Exception:  # noqa: BLE001 - an optional report: the heartbeat itself succeeded
        pass
