"""AWS prices and the cost model, in one place: ``bench/cost.py`` (what an edit costs) and the
per-workspace usage meter (:mod:`collab.domain.usage`, ``GET /workspaces/{id}/usage``) both use them.

Prices: us-east-1, on-demand, as published (API Gateway WebSocket, Lambda arm64, ElastiCache, RDS,
RDS Proxy). Fixed costs (Redis, Postgres) are the stack's, not a workspace's: the meter prices only
what grows with a workspace's use.
"""

from __future__ import annotations

import math
from typing import Any

WS_MESSAGE_USD = 1.00 / 1e6  # per message (first billion/month), metered in 32 KB increments
WS_CONNECTION_MINUTE_USD = 0.25 / 1e6
LAMBDA_REQUEST_USD = 0.20 / 1e6
LAMBDA_GB_SECOND_ARM_USD = 0.0000133334
ELASTICACHE_T4G_SMALL_HOUR_USD = 0.032  # per node; two nodes (primary + replica)
RDS_T4G_SMALL_HOUR_USD = 0.032  # single-AZ; Multi-AZ doubles it
RDS_PROXY_VCPU_HOUR_USD = 0.015  # billed per vCPU of the database, 2 vCPU minimum
HOURS_PER_MONTH = 730
MESSAGE_UNIT_BYTES = 32 * 1024


def usage_cost(
    *, frames_in: int, replies_out: int, posts_out: int, connection_minutes: float, invocations: int,
    gb_seconds: float,
) -> dict[str, float]:  # fmt: skip
    """USD of a workspace's metered use: API Gateway messages (each frame in, its route response,
    each post; one 32 KB unit each, which every frame of the protocol fits) and connection minutes,
    and Lambda requests and GB-seconds."""
    messages = frames_in + replies_out + posts_out
    api = messages * WS_MESSAGE_USD + connection_minutes * WS_CONNECTION_MINUTE_USD
    lam = invocations * LAMBDA_REQUEST_USD + gb_seconds * LAMBDA_GB_SECOND_ARM_USD
    return {"api_gateway_usd": api, "lambda_usd": lam, "total_usd": api + lam}


def message_units(size_bytes: int) -> int:
    return max(1, math.ceil(size_bytes / MESSAGE_UNIT_BYTES))


def month_estimate(to_date: dict[str, Any], elapsed_fraction: float) -> float:
    """The month's total at the current pace: month-to-date cost over the elapsed part of the month."""
    return float(to_date["total_usd"]) / max(elapsed_fraction, 1 / (HOURS_PER_MONTH * 60))
