"""AWS cost per million edits delivered to N members, from published prices and measured durations.

    python -m bench.cost [--members 1 10 50] [--message-ms-per-recipient 0.09] [--message-base-ms 4.0]
        [--hidden-share 0.5] [--workspace-size 10] [--edits-per-user-hour 2] [--switches-per-hour 1]

Presence (heartbeats, their answers, away switches, reconnects) is priced for a usage mix, before
(protocol v1) and after (v1.2: modes, quiet heartbeats, held leaves), per 1,000 connection-months.

Prices: us-east-1, on-demand, as published (API Gateway, Lambda arm64, ElastiCache, RDS, RDS Proxy).
Durations: the ``message`` handler's CPU time measured by ``python -m bench.task_update`` on one core of
this machine (base per edit + per recipient), taken as its duration on Lambda at 1,769 MB (one
vCPU), plus the Redis and Postgres round trips it waits on in AWS (assumed 1 ms for the two Redis
round trips and 4 ms for the transaction through RDS Proxy, typical same-AZ figures), and the Management
API's network time for the posts (assumed 10 ms per wave of 32 concurrent posts).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

# Published prices, us-east-1: one place for the benchmarks and the per-workspace usage meter.
from collab.pricing import (
    ELASTICACHE_T4G_SMALL_HOUR_USD,
    HOURS_PER_MONTH,
    LAMBDA_GB_SECOND_ARM_USD,
    LAMBDA_REQUEST_USD,
    MESSAGE_UNIT_BYTES,
    RDS_PROXY_VCPU_HOUR_USD,
    RDS_T4G_SMALL_HOUR_USD,
    WS_CONNECTION_MINUTE_USD,
    WS_MESSAGE_USD,
)

MESSAGE_MEMORY_MB = 1769  # infra/functions.py
HEARTBEAT_MEMORY_MB = 256
CONCURRENCY = 32  # posts in flight per fan-out (collab.adapters.apigw.management.CONCURRENCY)


def per_million_edits(
    members: int,
    *,
    base_ms: float,
    per_recipient_ms: float,
    event_bytes: int = 700,
    redis_ms: float = 1.0,
    db_ms: float = 4.0,
    wave_ms: float = 10.0,
) -> dict[str, float]:
    """USD for 10^6 edits, each delivered to every other member (one connection each)."""
    recipients = max(0, members - 1)
    units = max(1, math.ceil(event_bytes / MESSAGE_UNIT_BYTES))
    # messages: the edit in, its ack out (route response), one post per recipient
    messages = (2 + recipients * units) * 1e6
    waves = math.ceil(recipients / CONCURRENCY)
    duration_ms = base_ms + per_recipient_ms * recipients + redis_ms + db_ms + waves * wave_ms
    billed_ms = math.ceil(duration_ms)  # Lambda bills by the millisecond, rounded up
    gb_s = billed_ms / 1000 * MESSAGE_MEMORY_MB / 1024 * 1e6
    api = messages * WS_MESSAGE_USD
    lam = 1e6 * LAMBDA_REQUEST_USD + gb_s * LAMBDA_GB_SECOND_ARM_USD
    return {
        "members": members,
        "messages_millions": messages / 1e6,
        "handler_ms": duration_ms,
        "api_gateway_usd": api,
        "lambda_usd": lam,
        "total_usd": api + lam,
        "usd_per_million_deliveries": (api + lam) / max(recipients, 1),
    }


@dataclass(frozen=True)
class Mix:
    """How 1,000 (or ``connections``) tabs spend a month; one tab per user, ``workspace_size`` users
    online per workspace."""

    connections: int = 1000
    hidden_share: float = 0.5  # tabs away (hidden, or idle) at any moment
    workspace_size: int = 10  # users online together in a workspace
    edits_per_user_hour: float = 2.0  # edits per user per hour (every peer hears of each)
    # away <-> active changes per tab per hour, after the client's 10 s debounce, over the whole month
    # (nights and weekends included): 0.5 is two per working hour (176 of 730 h)
    switches_per_hour: float = 0.5
    reconnect_hours: float = 2.0  # API Gateway closes every connection after 2 h: the tab reconnects


# The protocol's numbers (collab.domain.presence.MODES, web/collab-client.js).
ACTIVE_HEARTBEAT_S = 30
AWAY_HEARTBEAT_S = 420
PROBE_AFTER_S = 600  # v1.2: a quiet tab probes after 10 minutes without a frame from the server
LEAVE_GRACE_S = 1.0  # v1.2: $disconnect holds a leave this long at most
REJOIN_S = 0.5  # a tab's reconnect reaches its first sync this long after the close (typical)
HEARTBEAT_MS = 2.0  # the heartbeat handler's duration (one Redis round trip)
DISCONNECT_MEMORY_MB = 256


def _beats_usd(n: float) -> float:
    """n heartbeats in: the message and one ~2 ms invocation at 256 MB."""
    gb_s = n * HEARTBEAT_MS / 1000 * HEARTBEAT_MEMORY_MB / 1024
    return n * (WS_MESSAGE_USD + LAMBDA_REQUEST_USD) + gb_s * LAMBDA_GB_SECOND_ARM_USD


def presence_month(mix: Mix, *, v12: bool) -> dict[str, float]:
    """USD per month for keeping ``mix.connections`` tabs present, edits aside, by line.

    v1: every tab heartbeats every 30 s and each heartbeat is answered; the board sends
    ``presence.update`` on every visibility change, posted to every peer; every reconnect at the
    2-hour limit is a ``presence.left`` and a ``presence.joined`` to every peer.
    v1.2: active tabs heartbeat every 30 s, away tabs every 7 minutes, and nothing is answered but a
    probe (after 10 minutes without any frame from the server; edits and presence changes are frames)
    or a tab that is behind; a switch is one heartbeat, posted to the user's peers that are not away,
    and a tab coming back probes (one answer, with the presence list); a reconnect within the 1 s
    grace posts nothing, at the price of the ``$disconnect`` waiting for it and one heartbeat (the
    client names its mode at once after its sync).
    """
    minutes = mix.connections * HOURS_PER_MONTH * 60
    hours = mix.connections * HOURS_PER_MONTH
    peers = max(0, mix.workspace_size - 1)
    switches = hours * mix.switches_per_hour
    reconnects = hours / mix.reconnect_hours
    out: dict[str, float] = {}
    if not v12:
        beats = minutes * 60 / ACTIVE_HEARTBEAT_S
        out["heartbeats_in_usd"] = _beats_usd(beats)
        out["heartbeat_answers_usd"] = beats * WS_MESSAGE_USD
        out["away_switches_usd"] = _beats_usd(switches) + switches * peers * WS_MESSAGE_USD
        out["reconnect_leave_join_usd"] = reconnects * 2 * peers * WS_MESSAGE_USD
    else:
        active, away = 1 - mix.hidden_share, mix.hidden_share
        beats = minutes * 60 * (active / ACTIVE_HEARTBEAT_S + away / AWAY_HEARTBEAT_S)
        # frames an active tab hears per hour: its peers' edits and presence changes (Poisson)
        heard_per_hour = peers * (mix.edits_per_user_hour + mix.switches_per_hour * active)
        silent = math.exp(-heard_per_hour * PROBE_AFTER_S / 3600)  # P(no frame in a probe period)
        probes = hours * active * 3600 / PROBE_AFTER_S * silent
        out["heartbeats_in_usd"] = _beats_usd(beats)
        out["heartbeat_answers_usd"] = probes * WS_MESSAGE_USD
        comebacks = switches / 2  # every other switch is back to active: its probe is answered
        # a switch is a heartbeat sent early: half a beat more than the schedule, on average
        out["away_switches_usd"] = (
            _beats_usd(switches / 2) + (switches * peers * active + comebacks) * WS_MESSAGE_USD
        )
        # the $disconnect waits until the reconnect has cancelled the leave (checks every 100 ms)
        grace_gb_s = reconnects * min(LEAVE_GRACE_S, REJOIN_S + 0.1) * DISCONNECT_MEMORY_MB / 1024
        # and the client's first heartbeat after its sync names its mode (one more beat)
        out["reconnect_leave_join_usd"] = grace_gb_s * LAMBDA_GB_SECOND_ARM_USD + _beats_usd(reconnects)
    out["total_usd"] = sum(out.values())
    return out


def connection_minutes_usd(connections: int) -> float:
    return connections * HOURS_PER_MONTH * 60 * WS_CONNECTION_MINUTE_USD


def accuracy() -> dict[str, str]:
    """Presence accuracy (v1.2) next to its cost: when a dead tab is noticed, at worst."""
    sweeper_s = 60
    return {
        "dead active tab noticed (server)": "<= 90 s after its last heartbeat (deadline 60 s, then the next"
        f" heartbeat of an active peer; <= {60 + sweeper_s} s by the minute sweeper alone)",
        "dead away tab noticed (server)": f"<= {(570 + sweeper_s) / 60:.1f} min after its last heartbeat "
        "(deadline 7 min + 2.5 min margin, then the minute sweeper)",
        "dead socket noticed (visible client)": f"<= {PROBE_AFTER_S // 60} min + 10 s of silence, "
        "or 10 s after an edit (its ack) or a return to the tab (its probe)",
        "join / leave seen by peers": f"<= 1 s (a leave waits {LEAVE_GRACE_S:.0f} s for a reconnect)",
        "away seen by peers": "10 s after the tab is hidden, 5 min after the last input",
    }


def fixed_month() -> dict[str, float]:
    return {
        "elasticache_2_nodes_usd": 2 * ELASTICACHE_T4G_SMALL_HOUR_USD * HOURS_PER_MONTH,
        "rds_t4g_small_usd": RDS_T4G_SMALL_HOUR_USD * HOURS_PER_MONTH,
        "rds_proxy_usd": 2 * RDS_PROXY_VCPU_HOUR_USD * HOURS_PER_MONTH,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", type=int, nargs="+", default=[1, 10, 50])
    ap.add_argument(
        "--message-base-ms", type=float, default=4.0, help="handler CPU per edit (bench.task_update)"
    )
    ap.add_argument(
        "--message-ms-per-recipient", type=float, default=0.09, help="CPU per post (bench.task_update)"
    )
    ap.add_argument("--connections", type=int, default=1000)
    ap.add_argument("--hidden-share", type=float, default=Mix.hidden_share, help="share of tabs away")
    ap.add_argument("--workspace-size", type=int, default=Mix.workspace_size, help="users online together")
    ap.add_argument("--edits-per-user-hour", type=float, default=Mix.edits_per_user_hour)
    ap.add_argument(
        "--switches-per-hour", type=float, default=Mix.switches_per_hour, help="away <-> active, per tab"
    )
    args = ap.parse_args()
    mix = Mix(
        connections=args.connections,
        hidden_share=args.hidden_share,
        workspace_size=args.workspace_size,
        edits_per_user_hour=args.edits_per_user_hour,
        switches_per_hour=args.switches_per_hour,
    )
    print("Per million edits, each delivered to every other member of the workspace (v1 and v1.2 alike):")
    print(
        f"{'members':>8} {'messages (M)':>13} {'handler ms':>11} {'API GW $':>9} {'Lambda $':>9}"
        f" {'total $':>8} {'$ per M deliveries':>19}"
    )
    for n in sorted({*args.members, mix.workspace_size}):
        r = per_million_edits(n, base_ms=args.message_base_ms, per_recipient_ms=args.message_ms_per_recipient)
        print(
            f"{n:>8} {r['messages_millions']:>13.0f} {r['handler_ms']:>11.1f} {r['api_gateway_usd']:>9.2f}"
            f" {r['lambda_usd']:>9.2f} {r['total_usd']:>8.2f} {r['usd_per_million_deliveries']:>19.2f}"
        )
    edits = mix.connections * HOURS_PER_MONTH * mix.edits_per_user_hour
    per_edit = per_million_edits(
        mix.workspace_size, base_ms=args.message_base_ms, per_recipient_ms=args.message_ms_per_recipient
    )["total_usd"]
    before, after = presence_month(mix, v12=False), presence_month(mix, v12=True)
    print(
        f"\nPresence for {mix.connections} connections for a month, USD: {mix.hidden_share:.0%} of tabs away,"
        f" {mix.workspace_size} online per workspace, {mix.edits_per_user_hour:g} edits per user-hour,"
        f" {mix.switches_per_hour:g} away/active switches per tab-hour, a reconnect every"
        f" {mix.reconnect_hours:g} h"
    )
    print(f"  {'':<28} {'before (v1)':>12} {'after (v1.2)':>13}")
    for k in before:
        print(f"  {k:<28} {before[k]:>12.2f} {after[k]:>13.2f}")
    minutes = connection_minutes_usd(mix.connections)
    print(f"  {'connection_minutes_usd':<28} {minutes:>12.2f} {minutes:>13.2f}")
    print(f"  {'edits_usd (unchanged)':<28} {edits / 1e6 * per_edit:>12.2f} {edits / 1e6 * per_edit:>13.2f}")
    print("\n  total_usd by away/active switches per tab-hour (the rest of the mix as above):")
    for rate in (0.0, 0.25, 0.5, 1.0, 2.0):
        m = Mix(**{**mix.__dict__, "switches_per_hour": rate})
        b, a = presence_month(m, v12=False)["total_usd"], presence_month(m, v12=True)["total_usd"]
        print(f"  {rate:>26g} {b:>12.2f} {a:>13.2f}")
    print("\nPresence accuracy (v1.2):")
    for k, v in accuracy().items():
        print(f"  {k:<38} {v}")
    print("\nFixed, per month (smallest production sizes; see docs/deploy.md for the whole stack):")
    for k, v in fixed_month().items():
        print(f"  {k:<28} {v:>9.2f}")


if __name__ == "__main__":
    main()
