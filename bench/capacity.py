"""Capacity model: 1,000 / 10,000 / 100,000 concurrent users in workspaces of 10 and 50, from the
per-operation costs measured here, against AWS's limits; and the monthly bill.

    python -m bench.capacity [--measure] [--users 1000 10000 100000] [--sizes 10 50]
        [--edits-per-user-hour 20] [--storm-s 60] [--json PATH]

Per operation (``--measure`` measures them again, ~1 minute; otherwise the numbers of the last
measured run, kept in :data:`MEASURED` with the date and command): the real handlers are invoked
in this process over real Postgres and Redis with a local Management API sink in another process
(as ``bench.task_update``), and for each operation the handler's CPU, the Redis commands and round
trips (counted where redis-py packs them, ``tests/support/redis_wire.py``), the Postgres
transactions and the posts are counted:

- ``edit``: ``task.update`` through ``$default``, fanned out to the workspace's other members;
- ``heartbeat``: a quiet v1.2 heartbeat (``seq``, ``mode``) through the heartbeat route;
- ``reconnect``: ``$connect`` with a fresh ticket, the first ``sync``, and the ``$disconnect`` of
  the connection it replaces (its leave cancelled by the reconnect within the grace).

The load at the busy hour, per user (one tab each, all users online at once; each is an argument):
``--edits-per-user-hour`` edits (20: one every 3 minutes, ten times bench.cost's average of 2), half
the tabs away (heartbeat every 30 s active, 7 minutes away), 2 away/active switches per tab-hour,
and a reconnect every 2 hours (API Gateway's maximum connection). A reconnect storm (a deploy, a
failover, a network blip) brings every user back within ``--storm-s`` seconds.

Limits (defaults of a new account in us-east-1, and the stack's own settings, infra/config.py):
API Gateway 500 new WebSocket connections/s and 10,000 requests/s per account (client messages and
@connections calls together); the WebSocket stage's throttle (``wsThrottleRate``, 500/s); Lambda
1,000 concurrent executions per account; Postgres commits/s of the instance and RDS Proxy's
connections to it; Redis commands/s and memory of the node.

The monthly bill prices the same users online around the clock (730 h) at the average rate
(bench.cost's mix: 2 edits per user-hour), with published us-east-1 prices (collab.pricing).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collab.pricing import (
    ELASTICACHE_T4G_SMALL_HOUR_USD,
    HOURS_PER_MONTH,
    LAMBDA_GB_SECOND_ARM_USD,
    LAMBDA_REQUEST_USD,
    RDS_PROXY_VCPU_HOUR_USD,
    RDS_T4G_SMALL_HOUR_USD,
)

RESULTS = Path(__file__).resolve().parent / "results"

# Measured by `python -m bench.capacity --measure` (2026-12-04 13:01 UTC, this 2-core machine
# quiet, load average 1.1): per operation, the handler's CPU (ms), Redis commands and round trips,
# Postgres transactions, posts; Redis bytes per connection (its record, its user's index, the
# sweeper's entry), per acknowledged mutation's answer (kept REQUEST_TTL_S) and per workspace after
# 90 edits (registry, presence, the history and the tracer's last 100 events). Edits at fan-out 9
# and 49 (workspaces of 10 and 50); the model interpolates linearly.
MEASURED: dict[str, dict[str, float]] = {
    "edit@9": {"cpu_ms": 2.55, "redis_cmds": 6.0, "redis_rt": 3.0, "pg_tx": 1.0, "posts": 9.0},
    "edit@49": {"cpu_ms": 3.84, "redis_cmds": 6.0, "redis_rt": 3.0, "pg_tx": 1.0, "posts": 49.0},
    "heartbeat": {"cpu_ms": 0.55, "redis_cmds": 7.0, "redis_rt": 3.0, "pg_tx": 0.0, "posts": 0.0},
    "reconnect": {"cpu_ms": 4.02, "redis_cmds": 28.0, "redis_rt": 10.0, "pg_tx": 2.0, "posts": 0.0},
    "redis_bytes_per_connection": {"value": 408.8},
    "redis_bytes_per_answer": {"value": 760.0},
    "redis_bytes_per_workspace@10": {"value": 141_115.0},
    "redis_bytes_per_workspace@50": {"value": 334_227.0},
}

# Lambda memory (infra/functions.py): CPU scales with it, 1,769 MB = one vCPU.
MEMORY_MB = {
    "message": 1769,
    "heartbeat": 256,
    "connect": 512,
    "disconnect": 256,
    "api": 1024,
    "fanout": 1769,
}
FULL_VCPU_MB = 1769
# Waits in AWS per call (same-AZ, typical): what a handler's duration adds to its CPU.
REDIS_RT_MS = 0.5
PG_TX_MS = 4.0  # a transaction through RDS Proxy (4 round trips)
POST_WAVE_MS = 10.0  # one wave of concurrent Management API posts
POST_CONCURRENCY = 32
TICKET_MS = 15.0  # POST /ws-tickets through the HTTP API (api function), per reconnect

# Account and stack limits (us-east-1 defaults; infra/config.py).
APIGW_NEW_CONNECTIONS_S = 500
APIGW_REQUESTS_S = 10_000
WS_STAGE_RATE = 500  # infra/config.py ws_throttle_rate
LAMBDA_CONCURRENCY = 1000
# Commits per second the stack's db.t4g instance sustains with its WAL on gp3 (an assumption: ~1 ms
# per commit flush, grouped); an r7g.large about 5x.
PG_COMMITS_S = 1000
# RDS Proxy's connections to Postgres: the instance's max_connections (t4g.micro ~110, t4g.small
# ~225: memory / 9.5 MB); each transaction in flight holds one for its duration.
PG_CONNECTIONS = 110
# A cache.t4g.small node: commands per second for this mix of scripts and small commands (an
# assumption; Redis runs commands on one core, ~50-100k/s of simple ones, scripts cost more), and
# memory (1.37 GiB, with noeviction).
REDIS_CMDS_S = 25_000
REDIS_BYTES = int(1.37 * 2**30)
# Fixed monthly costs (collab.pricing; Multi-AZ Postgres doubles the instance).
FIXED_USD = {
    "elasticache_2_nodes": 2 * ELASTICACHE_T4G_SMALL_HOUR_USD * HOURS_PER_MONTH,
    "rds_multi_az": 2 * RDS_T4G_SMALL_HOUR_USD * HOURS_PER_MONTH,
    "rds_proxy": 2 * RDS_PROXY_VCPU_HOUR_USD * HOURS_PER_MONTH,
}

WHAT_TO_DO = {
    "apigw_new_connections": "ask for a higher 'new connections per second' quota; clients already reconnect"
    " with full-jitter backoff (first retry < 100 ms, cap 10 s), which spreads a storm over ~N/500 s",
    "apigw_requests": "ask for a higher account throttle (adjustable); quiet heartbeats and batched"
    " presence already keep requests to edits' posts; past ~50k RPS, shard users across accounts/regions",
    "ws_stage_throttle": "raise wsThrottleRate (reserved concurrency follows it, infra/functions.py)",
    "lambda_concurrency": "ask for a higher concurrency quota; reserved concurrency per route keeps one"
    " route from starving the others",
    "postgres_commits": "a larger instance (r7g.large: ~5x); reads (sync beyond Redis, GETs) to a read"
    " replica; writes stay one transaction per mutation",
    "postgres_connections": "a larger instance (max_connections grows with memory); RDS Proxy already"
    " multiplexes every Lambda onto them",
    "redis_commands": "cluster mode (REDIS_CLUSTER=1): keys are hash-tagged per workspace and per user,"
    " so shards split the load; a larger node first",
    "redis_memory": "a larger node or cluster mode; the tracer's and history's 100 entries per workspace"
    " are most of it",
}


@dataclass(frozen=True)
class Load:
    edits_per_user_hour: float = 20.0
    away_share: float = 0.5
    switches_per_hour: float = 2.0
    reconnect_hours: float = 2.0
    storm_s: float = 60.0


def _lerp(size: int) -> dict[str, float]:
    """An edit's costs at fan-out size - 1, from the two measured fan-outs."""
    lo, hi = MEASURED["edit@9"], MEASURED["edit@49"]
    t = (size - 1 - 9) / 40
    return {k: lo[k] + (hi[k] - lo[k]) * t for k in lo}


def _duration_ms(op: dict[str, float], memory_mb: int, posts: float = 0.0) -> float:
    cpu = op["cpu_ms"] * max(1.0, FULL_VCPU_MB / memory_mb)
    waves = math.ceil(posts / POST_CONCURRENCY) if posts else 0
    return cpu + op["redis_rt"] * REDIS_RT_MS + op["pg_tx"] * PG_TX_MS + waves * POST_WAVE_MS


def model(users: int, size: int, load: Load) -> dict[str, Any]:
    """Peak rates, what each limit is used to, the first limit, and the month's bill."""
    edit, beat, rec = _lerp(size), MEASURED["heartbeat"], MEASURED["reconnect"]
    peers = size - 1
    workspaces = math.ceil(users / size)
    edits_s = users * load.edits_per_user_hour / 3600
    beats_s = users * ((1 - load.away_share) / 30 + load.away_share / 420)
    switches_s = users * load.switches_per_hour / 3600  # a heartbeat naming the mode, early
    reconnects_s = users / (load.reconnect_hours * 3600)
    storm_s = users / load.storm_s
    # presence posts: a switch to peers that are not away; joins and leaves are cancelled by the
    # reconnect within the grace; a workspace of >= 100 batches them (one frame per 0.5 s at most)
    presence_posts_s = switches_s * peers * (1 - load.away_share)
    posts_s = edits_s * peers + presence_posts_s
    frames_s = edits_s + beats_s + switches_s + reconnects_s * 2  # + sync and a heartbeat per reconnect
    requests_s = frames_s + posts_s + reconnects_s * 2  # + $connect and POST /ws-tickets
    durations = {
        "message": _duration_ms(edit, MEMORY_MB["message"], edit["posts"] if size <= 100 else 100),
        "heartbeat": _duration_ms(beat, MEMORY_MB["heartbeat"]),
        "reconnect": _duration_ms(rec, MEMORY_MB["connect"]) + TICKET_MS,
    }
    concurrency = {
        "message": edits_s * durations["message"] / 1000,
        "heartbeat": (beats_s + switches_s) * durations["heartbeat"] / 1000,
        "connect+sync+disconnect+api": reconnects_s * durations["reconnect"] / 1000,
    }
    pg_s = edits_s * edit["pg_tx"] + reconnects_s * rec["pg_tx"]
    redis_s = (
        edits_s * edit["redis_cmds"]
        + (beats_s + switches_s) * beat["redis_cmds"]
        + reconnects_s * rec["redis_cmds"]
    )
    from collab.adapters.redis.store import REQUEST_TTL_S

    # + each acknowledged mutation's answer, kept for REQUEST_TTL_S as the fast path for retries
    answers_bytes = edits_s * REQUEST_TTL_S * MEASURED["redis_bytes_per_answer"]["value"]
    redis_bytes = (
        users * MEASURED["redis_bytes_per_connection"]["value"]
        + workspaces * _workspace_bytes(size)
        + answers_bytes
    )
    # In a storm, every user asks to connect within storm_s; API Gateway admits at most its quota
    # per second, and what is admitted costs each reconnect's Lambdas, transactions and commands.
    admitted = min(storm_s, APIGW_NEW_CONNECTIONS_S)
    storm_lambda = admitted * durations["reconnect"] / 1000
    use = {  # name: (busy hour, during a storm, the limit)
        "apigw_new_connections": (reconnects_s, storm_s, APIGW_NEW_CONNECTIONS_S),
        "apigw_requests": (requests_s, requests_s + storm_s * 3, APIGW_REQUESTS_S),
        "ws_stage_throttle": (frames_s, frames_s + storm_s * 2, WS_STAGE_RATE),
        "lambda_concurrency": (
            sum(concurrency.values()),
            sum(concurrency.values()) + storm_lambda,
            LAMBDA_CONCURRENCY,
        ),
        "postgres_commits": (pg_s, pg_s + admitted * rec["pg_tx"], PG_COMMITS_S),
        "postgres_connections": (
            pg_s * PG_TX_MS / 1000,
            (pg_s + admitted * rec["pg_tx"]) * PG_TX_MS / 1000,
            PG_CONNECTIONS,
        ),
        "redis_commands": (redis_s, redis_s + admitted * rec["redis_cmds"], REDIS_CMDS_S),
        "redis_memory": (redis_bytes, redis_bytes, REDIS_BYTES),
    }
    # The first limit: of AWS's quotas and the resources' capacities; the stage throttle is the
    # stack's own setting, sized to the expected load (reported apart, raised with the size)
    limits = [kv for kv in use.items() if kv[0] != "ws_stage_throttle"]
    ranked = sorted(limits, key=lambda kv: kv[1][0] / kv[1][2], reverse=True)
    ranked_storm = sorted(limits, key=lambda kv: kv[1][1] / kv[1][2], reverse=True)
    first, (peak, _, limit) = ranked[0]
    first_storm, (_, storm_peak, storm_limit) = ranked_storm[0]
    return {
        "users": users,
        "workspace_size": size,
        "workspaces": workspaces,
        "rates_per_s": {
            "edits": edits_s,
            "heartbeats": beats_s,
            "switches": switches_s,
            "reconnects": reconnects_s,
            "storm_connects": storm_s,
            "posts": posts_s,
            "client_frames": frames_s,
            "apigw_requests": requests_s,
            "postgres_tx": pg_s,
            "redis_cmds": redis_s,
        },
        "lambda_ms": durations,
        "lambda_concurrency": concurrency,
        "redis_bytes": redis_bytes,
        "use": {
            k: {"peak": v[0], "storm": v[1], "limit": v[2], "share": v[0] / v[2], "storm_share": v[1] / v[2]}
            for k, v in use.items()
        },
        "first_limit": {"name": first, "share": peak / limit, "what": WHAT_TO_DO[first]},
        "stage_throttle": {
            "share": frames_s / WS_STAGE_RATE,
            "storm_share": (frames_s + storm_s * 2) / WS_STAGE_RATE,
        },
        "first_limit_in_storm": {
            "name": first_storm,
            "share": storm_peak / storm_limit,
            "what": WHAT_TO_DO[first_storm],
        },
        "month_usd": bill(users, size),
    }


def _workspace_bytes(size: int) -> float:
    lo, hi = (
        MEASURED["redis_bytes_per_workspace@10"]["value"],
        MEASURED["redis_bytes_per_workspace@50"]["value"],
    )
    return lo + (hi - lo) * (size - 10) / 40


def bill(users: int, size: int, edits_per_user_hour: float = 2.0) -> dict[str, float]:
    """USD per month for ``users`` online around the clock at the average mix (bench.cost)."""
    from bench.cost import Mix, connection_minutes_usd, per_million_edits, presence_month

    per_m = per_million_edits(
        size,
        base_ms=MEASURED["edit@9"]["cpu_ms"] - 9 * _per_recipient_ms(),
        per_recipient_ms=_per_recipient_ms(),
    )["total_usd"]
    edits = users * HOURS_PER_MONTH * edits_per_user_hour
    mix = Mix(connections=users, workspace_size=size, edits_per_user_hour=edits_per_user_hour)
    out = {
        "edits": edits / 1e6 * per_m,
        "presence": presence_month(mix, v12=True)["total_usd"],
        "connection_minutes": connection_minutes_usd(users),
        "reconnect_lambdas": users * HOURS_PER_MONTH / 2 * 3 * LAMBDA_REQUEST_USD
        + users
        * HOURS_PER_MONTH
        / 2
        * _duration_ms(MEASURED["reconnect"], 512)
        / 1000
        * 0.5
        * LAMBDA_GB_SECOND_ARM_USD,
        **{k: v for k, v in FIXED_USD.items()},
    }
    out["total"] = sum(out.values())
    out["per_user"] = out["total"] / users
    return out


def _per_recipient_ms() -> float:
    return (MEASURED["edit@49"]["cpu_ms"] - MEASURED["edit@9"]["cpu_ms"]) / 40


# -- measuring ---------------------------------------------------------------------------------
def measure() -> dict[str, dict[str, float]]:
    """Per-operation costs with the real handlers (see the module docstring)."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    import logging

    logging.getLogger("collab").setLevel(logging.ERROR)
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    from bench.common import fast_sink, services

    out: dict[str, dict[str, float]] = {}
    with services() as (db_url, redis_url), fast_sink() as endpoint:
        for size in (10, 50):
            out.update(_measure_size(db_url, redis_url, endpoint, size))
    return out


class _Ctx:
    function_name = "bench"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


def _measure_size(db_url: str, redis_url: str, endpoint: str, size: int) -> dict[str, dict[str, float]]:
    import contextlib
    import io

    from collab import runtime
    from collab.adapters.redis import keys
    from collab.auth.tokens import issue_ticket
    from collab.clock import ManualClock
    from collab.config import load_settings
    from collab.domain import tasks
    from collab.protocol.client_frames import TaskDraft
    from tests.support.redis_wire import counting

    events = Path(__file__).resolve().parents[1] / "tests" / "events"
    template = {
        n: json.loads((events / f"{n}.json").read_text())
        for n in ("connect", "message", "heartbeat", "disconnect")
    }
    settings = load_settings(
        {
            "DATABASE_URL": db_url,
            "REDIS_URL": redis_url,
            "JWT_SECRET": "c" * 32,
            "CONNECTIONS_ENDPOINT": endpoint,
            "WEBSOCKET_URL": "ws://unused/ws",
        }
    )
    rt = runtime.Runtime(settings, clock=ManualClock(time.time()))
    runtime.install(rt)  # before the handlers are imported: each takes the container's runtime
    from functions.connect.handler import handler as connect
    from functions.disconnect.handler import handler as disconnect
    from functions.heartbeat.handler import handler as heartbeat
    from functions.message.handler import handler as message

    rt.store.r.flushdb()
    tag = uuid.uuid4().hex[:6]
    members = [f"cap{tag}-{i:02d}" for i in range(size)]

    def setup(cur: Any) -> str:
        cur.executemany("INSERT INTO users (id, display_name) VALUES (%s, %s)", [(u, u) for u in members])
        wid = cur.execute(
            "INSERT INTO workspaces (name, created_by) VALUES ('cap', %s) RETURNING id", (members[0],)
        ).fetchone()["id"]
        cur.executemany(
            "INSERT INTO workspace_members (workspace_id, user_id, role) VALUES (%s, %s, %s)",
            [(wid, u, "owner" if i == 0 else "member") for i, u in enumerate(members)],
        )
        return str(wid)

    wid = rt.db.run(setup)
    ctx = _Ctx()
    sink = io.StringIO()

    def event(kind: str, cid: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        ev = json.loads(json.dumps(template[kind]))
        ev["requestContext"]["connectionId"] = cid
        if body is not None:
            ev["body"] = json.dumps(body)
        return ev

    def connect_sync(uid: str) -> str:
        cid = f"{uuid.uuid4().hex[:15]}="
        ev = event("connect", cid)
        ev["queryStringParameters"] = {"token": issue_ticket(settings, uid, wid)[0]}
        ev["multiValueQueryStringParameters"] = {"token": [ev["queryStringParameters"]["token"]]}
        assert connect(ev, ctx)["statusCode"] == 200
        assert message(event("message", cid, {"action": "sync", "since": None}), ctx)["statusCode"] == 200
        return cid

    def run(fn: Any, evs: list[dict[str, Any]]) -> dict[str, float]:
        gw = rt.gateway_for(None)
        tx0, posts0 = rt.db.transactions, gw.posts
        cpu0 = time.process_time()
        with counting() as wire, contextlib.redirect_stdout(sink):
            for ev in evs:
                fn(ev, ctx)
        n = len(evs)
        return {
            "cpu_ms": (time.process_time() - cpu0) * 1000 / n,
            "redis_cmds": wire.commands / n,
            "redis_rt": wire.round_trips / n,
            "pg_tx": (rt.db.transactions - tx0) / n,
            "posts": (gw.posts - posts0) / n,
        }

    with contextlib.redirect_stdout(sink):
        cids = [connect_sync(u) for u in members]
        tid = tasks.create(rt.db, members[0], TaskDraft(title="cap"), workspace_id=wid).task["id"]
        for i in range(3):  # warm: clients, pools, prepared statements
            message(
                event(
                    "message",
                    cids[i],
                    {
                        "action": "task.update",
                        "request_id": str(uuid.uuid4()),
                        "task_id": tid,
                        "changes": {"title": f"w{i}"},
                    },
                ),
                ctx,
            )
    edits = [
        event(
            "message",
            cids[i % size],
            {
                "action": "task.update",
                "request_id": str(uuid.uuid4()),
                "task_id": tid,
                "changes": {"title": f"t{i}"},
            },
        )
        for i in range(min(90, 9 * size))
    ]
    out = {f"edit@{size - 1}": run(message, edits)}
    latest = int(rt.store.history(wid, 0)[-1][0])
    beats = [
        event("heartbeat", cids[i % size], {"action": "heartbeat", "seq": latest, "mode": "active"})
        for i in range(5 * size)
    ]
    out["heartbeat"] = run(heartbeat, beats)
    # a reconnect: a ticket's $connect, the first sync, the old connection's $disconnect (its
    # user is back already: no leave, no join posted, as within the grace)
    owner = {cid: uid for cid, uid in zip(cids, members, strict=True)}

    def cycle(ev: dict[str, Any], _: Any) -> None:
        connect_sync(owner[ev["requestContext"]["connectionId"]])
        disconnect(ev, ctx)

    out["reconnect"] = run(cycle, [event("disconnect", cid) for cid in cids[: min(size, 10)]])
    r = rt.store.r
    ws_bytes = sum(int(r.memory_usage(k) or 0) for k in r.scan_iter(keys.ws(wid, "*")))
    conn_bytes = sum(int(r.memory_usage(k) or 0) for k in r.scan_iter("collab:conn:*"))
    user_bytes = sum(int(r.memory_usage(k) or 0) for k in r.scan_iter("collab:{u:*}:conns"))
    sweep_bytes = int(r.memory_usage("collab:sweep") or 0)
    answers = [int(r.memory_usage(k) or 0) for k in r.scan_iter("collab:{u:*}:req:*")]
    out["redis_bytes_per_answer"] = {"value": sum(answers) / max(1, len(answers))}
    out[f"redis_bytes_per_workspace@{size}"] = {"value": float(ws_bytes)}
    out["redis_bytes_per_connection"] = {"value": (conn_bytes + user_bytes + sweep_bytes) / size}
    runtime.install(None)
    rt.db.close()
    return out


# -- report ------------------------------------------------------------------------------------
def _fmt(x: float) -> str:
    return f"{x:,.0f}" if x >= 10 else f"{x:.2f}"


def report(rows: list[dict[str, Any]], load: Load) -> str:
    lines = [
        f"Busy hour: {load.edits_per_user_hour:g} edits per user-hour, {load.away_share:.0%} of tabs away,"
        f" {load.switches_per_hour:g} switches per tab-hour, a reconnect every {load.reconnect_hours:g} h;"
        f" storm: every user back within {load.storm_s:g} s. First limit: of AWS's quotas and the"
        " instances' capacities (the stage throttle is the stack's own setting).",
        "",
        "| users | size | edits/s | posts/s | API GW req/s | new conn/s (storm) | Lambda conc. | PG tx/s"
        " | Redis cmd/s | Redis MB | $/month | $/user-month | stage throttle (busy / storm)"
        " | first limit (busy hour) | first limit (storm) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        rate, use = r["rates_per_s"], r["use"]
        first, storm = r["first_limit"], r["first_limit_in_storm"]
        lines.append(
            f"| {r['users']:,} | {r['workspace_size']} | {_fmt(rate['edits'])} | {_fmt(rate['posts'])}"
            f" | {_fmt(rate['apigw_requests'])} | {_fmt(rate['reconnects'])} ({_fmt(rate['storm_connects'])})"
            f" | {_fmt(use['lambda_concurrency']['peak'])} | {_fmt(rate['postgres_tx'])}"
            f" | {_fmt(rate['redis_cmds'])} | {r['redis_bytes'] / 2**20:,.0f}"
            f" | {r['month_usd']['total']:,.0f} | {r['month_usd']['per_user']:.3f}"
            f" | {r['stage_throttle']['share']:.0%} / {r['stage_throttle']['storm_share']:.0%}"
            f" | {first['name']} ({first['share']:.0%}) | {storm['name']} ({storm['share']:.0%}) |"
        )
    return "\n".join(lines)


def detail(rows: list[dict[str, Any]]) -> str:
    """Each limit's use, busy hour / storm, as a share of the limit."""
    head = " | ".join(f"{r['users'] // 1000}k / {r['workspace_size']}" for r in rows)
    lines = [f"| limit | value | {head} |", "| --- | --- |" + " --- |" * len(rows)]
    for name in rows[0]["use"]:
        limit = rows[0]["use"][name]["limit"]
        shown = f"{limit / 2**30:.2f} GiB" if name == "redis_memory" else f"{limit:,.0f}"
        cells = " | ".join(
            f"{r['use'][name]['share']:.0%} / {r['use'][name]['storm_share']:.0%}" for r in rows
        )
        lines.append(f"| {name} | {shown} | {cells} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    global MEASURED
    ap = argparse.ArgumentParser(
        prog="python -m bench.capacity",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--measure", action="store_true", help="measure the per-operation costs again")
    ap.add_argument("--users", type=int, nargs="+", default=[1000, 10_000, 100_000])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 50])
    ap.add_argument("--edits-per-user-hour", type=float, default=Load.edits_per_user_hour)
    ap.add_argument(
        "--storm-s",
        type=float,
        default=Load.storm_s,
        help="a reconnect storm brings everyone back within this",
    )
    ap.add_argument("--json", type=Path, default=RESULTS / "capacity.json")
    args = ap.parse_args(argv)
    measured_now = None
    if args.measure:
        load_before = os.getloadavg()
        measured_now = measure()
        MEASURED = {**MEASURED, **measured_now}
        print(f"measured (load average {load_before[0]:.2f} -> {os.getloadavg()[0]:.2f}):")
        for k, v in measured_now.items():
            print(f"  {k:<32} " + "  ".join(f"{m} {x:,.2f}" for m, x in v.items()))
        print()
    load = Load(edits_per_user_hour=args.edits_per_user_hour, storm_s=args.storm_s)
    rows = [model(u, s, load) for u in args.users for s in args.sizes]
    print(report(rows, load))
    print()
    print("Each limit's use at the busy hour / in a storm:")
    print(detail(rows))
    print()
    for r in rows:
        f, s = r["first_limit"], r["first_limit_in_storm"]
        print(
            f"{r['users']:>7,} users in workspaces of {r['workspace_size']}:"
            f" busy hour {f['name']} at {f['share']:.0%};"
            f" storm {s['name']} at {s['share']:.0%} -> {s['what']}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {"measured": MEASURED, "measured_now": measured_now, "load": load.__dict__, "rows": rows},
            indent=1,
        )
    )
    print(f"\nresults: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
