"""AWS cost per million edits delivered to N members, from published prices and measured durations.

    python -m bench.cost [--members 1 10 50] [--message-ms-per-recipient 0.09] [--message-base-ms 4.0]

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


def connection_month(connections: int) -> dict[str, float]:
    """What keeping N connections open all month costs, edits aside: connection minutes and the
    heartbeat every 30 s (a message in, heartbeat.ack out, one ~2 ms Lambda invocation)."""
    minutes = connections * HOURS_PER_MONTH * 60
    heartbeats = minutes * 2
    hb_gb_s = heartbeats * 0.002 * HEARTBEAT_MEMORY_MB / 1024
    return {
        "connection_minutes_usd": minutes * WS_CONNECTION_MINUTE_USD,
        "heartbeat_messages_usd": heartbeats * 2 * WS_MESSAGE_USD,
        "heartbeat_lambda_usd": heartbeats * LAMBDA_REQUEST_USD + hb_gb_s * LAMBDA_GB_SECOND_ARM_USD,
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
    args = ap.parse_args()
    print("Per million edits, each delivered to every other member of the workspace:")
    print(
        f"{'members':>8} {'messages (M)':>13} {'handler ms':>11} {'API GW $':>9} {'Lambda $':>9}"
        f" {'total $':>8} {'$ per M deliveries':>19}"
    )
    for n in args.members:
        r = per_million_edits(n, base_ms=args.message_base_ms, per_recipient_ms=args.message_ms_per_recipient)
        print(
            f"{n:>8} {r['messages_millions']:>13.0f} {r['handler_ms']:>11.1f} {r['api_gateway_usd']:>9.2f}"
            f" {r['lambda_usd']:>9.2f} {r['total_usd']:>8.2f} {r['usd_per_million_deliveries']:>19.2f}"
        )
    c = connection_month(args.connections)
    print(f"\nKeeping {args.connections} connections open for a month (edits aside):")
    for k, v in c.items():
        print(f"  {k:<28} {v:>9.2f}")
    print("\nFixed, per month (smallest production sizes; see docs/deploy.md for the whole stack):")
    for k, v in fixed_month().items():
        print(f"  {k:<28} {v:>9.2f}")


if __name__ == "__main__":
    main()
