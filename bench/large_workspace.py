"""A workspace of 500 live members through the local gateway: edit->peer latency, and what a
reconnect storm of all 500 costs in posts.

    python -m bench.large_workspace [--members 500] [--rate 2] [--duration 20] [--storm 250,500]

Issue 15's targets, measured locally: edit->peer p95 <= 100 ms in a workspace of 500 live members,
and a reconnect storm of all of them costing O(n) posts, not O(n^2).

(1) Edits: one workspace of ``--members`` members, one connection each (``bench.e2e.BoardClient``,
the Python twin of ``web/collab-client.js``), ``--editors`` of them editing at ``--rate`` edits/s in
all; every peer measures edit->peer as ``bench.e2e`` does. Each edit reaches 499 peers: the message
function posts 100 and hands the rest to the fan-out function in chunks of 100 (asynchronous
invocations through the gateway's Invoke API, ``collab.domain.fanout``).

(2) Storm, for each size in ``--storm``: a workspace of that many members, all live; then every
socket is dropped at once (TCP abort: the gateway sees 1006 and runs ``$disconnect`` for each) and
every client reconnects as a browser does (full-jitter backoff, a fresh ticket, ``sync``). Posts
are the presence frames the clients received from the drop until 3 s after the last one was live
again (every received frame is one Management API post); a design posting each join and leave to
every peer would cost up to 2 x n x (n - 1).

The stack is ``collab dev --workers N`` (``--workers``, default 8): the real functions over real
Postgres and Redis in containers of their own, at most N per function, as Lambda runs them side by
side, so the fan-out chunks of one edit are posted concurrently, as in AWS. ``--workers 0`` runs
every handler in the gateway's one process instead (as ``bench.e2e``): the fan-out chunks then take
turns, and the p95 measures that process rather than the design.

Results: a table on stdout, progress on stderr, ``bench/results/large_workspace.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from bench.e2e import JWT_SECRET, GatewayProcess, Scenario, dist, progress, run_scenario

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_P95_MS = 100.0
PRESENCE = ("presence.joined", "presence.left", "presence.updated", "presence.batch")


async def storm(
    members: int, gw: GatewayProcess, services: tuple[str, str], settings: Any, seed: int
) -> dict[str, Any]:
    import aiohttp

    from tests.support.board_client import BoardClient
    from tests.support.workspaces import make_workspaces, unregistered

    db_url, redis_url = services
    [team] = make_workspaces(
        db_url, settings, workspaces=1, members=members, tasks=3, tag=f"storm-{uuid.uuid4().hex[:6]}"
    )
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))
    rng = random.Random(seed)
    clients = [
        BoardClient(http, f"{gw.http_url}/api", user_id=m.user_id, token=m.token,
                    workspace_id=team.workspace_id, tasks=team.tasks, last_seq=team.last_seq,
                    rng=random.Random(rng.random()), user_agent=f"collab-storm {m.user_id}")
        for m in team.members
    ]  # fmt: skip
    gate = asyncio.Semaphore(16)

    async def start(c: BoardClient) -> None:
        async with gate:
            c.start()
            await asyncio.wait_for(c.live.wait(), 120)

    def presence_frames() -> Counter[str]:
        out: Counter[str] = Counter()
        for c in clients:
            out.update({k: v for k, v in c.counts.items() if k in PRESENCE})
        return out

    try:
        t0 = time.perf_counter()
        await asyncio.gather(*(start(c) for c in clients))
        progress(f"[storm {members}] all live in {time.perf_counter() - t0:.1f} s; settling")
        await asyncio.sleep(3)  # the joins' last batch goes out with the next heartbeat or change
        before, cpu0 = presence_frames(), gw.cpu_s()
        t_drop = time.perf_counter()
        for c in clients:
            c.drop()
        await asyncio.sleep(0.2)
        await asyncio.wait_for(asyncio.gather(*(c.live.wait() for c in clients)), 240)
        back_s = time.perf_counter() - t_drop
        progress(f"[storm {members}] all {members} live again after {back_s:.1f} s")
        await asyncio.sleep(3)
        after, cpu1 = presence_frames(), gw.cpu_s()
        frames = after - before
        posts = sum(frames.values())
        deaf = await asyncio.to_thread(unregistered, redis_url, clients)
        registry = await asyncio.to_thread(_registry, redis_url, team.workspace_id)
        reconnects = [r for c in clients for r in c.reconnects]
        return {
            "members": members,
            "resynced_s": back_s,
            "reconnect_total_ms": dist([r.total_ms for r in reconnects]),
            "presence_posts": posts,
            "presence_posts_by_type": dict(frames),
            "posts_per_member": posts / members,
            "quadratic_reference": 2 * members * (members - 1),
            "deaf": len(deaf),
            "registry": registry,
            "not_live": sum(1 for c in clients if c.state != "live"),
            "gateway_cpu_s": cpu1 - cpu0,
        }
    finally:
        await asyncio.gather(*(c.stop() for c in clients), return_exceptions=True)
        await http.close()


def _registry(redis_url: str, wid: str) -> dict[str, int]:
    """The workspace's connections as Redis holds them: registered, synced (fan-out targets)."""
    import redis

    from collab.adapters.redis import keys

    r = redis.Redis.from_url(redis_url)
    try:
        return {"registered": r.hlen(keys.ws(wid, "conns")), "synced": r.scard(keys.ws(wid, "joined"))}
    finally:
        r.close()


class WorkerGateway:
    """``collab dev --workers N`` seen as ``bench.e2e.run_scenario`` sees a gateway. Its CPU is the
    gateway's and its containers' (``bench.scale`` has the split); ``collab dev`` freezes its
    collector once started, and pauses in other processes are not reported."""

    def __init__(self, dev: Any) -> None:
        self.dev = dev

    @property
    def http_url(self) -> str:
        return str(self.dev.http_url)

    @property
    def pid(self) -> int:
        return int(self.dev.pid)

    def cpu_s(self) -> float:
        from bench.scale import _cpu_s

        return _cpu_s([self.dev.pid, *self.dev.workers_pids()])

    def gc_pauses(self, command: str = "gc") -> list[tuple[int, float, int]]:
        return []


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.large_workspace", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--members", type=int, default=500)
    ap.add_argument("--editors", type=int, default=25)
    ap.add_argument("--rate", type=float, default=2.0, help="edits/s in all (x 499 peers = deliveries/s)")
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--storm", default="250,500", help="storm sizes ('' for none)")
    ap.add_argument(
        "--workers", type=int, default=8, help="collab dev --workers (0: every function in one process)"
    )
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--seed", type=int, default=15)
    args = ap.parse_args(argv)
    from bench.common import services
    from collab.config import load_settings

    results: dict[str, Any] = {
        "workers": args.workers,
        "command": "python -m bench.large_workspace " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"cores": os.cpu_count(), "loadavg_before": os.getloadavg()},
    }
    with services() as (db_url, redis_url):
        import redis

        redis.Redis.from_url(redis_url).flushdb()
        env = {
            "DATABASE_URL": db_url,
            "REDIS_URL": redis_url,
            "JWT_SECRET": JWT_SECRET,
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            "POWERTOOLS_METRICS_DISABLED": "true",
            # a workspace of 500 live members: every member's one connection, and room for the
            # reconnects of a storm before their old connections' $disconnect has run
            "LIMIT_CONNECTIONS_PER_WORKSPACE": "1000",
            "LIMIT_MEMBERS_PER_WORKSPACE": "1000",
        }
        settings = load_settings({**env, "WEBSOCKET_URL": "ws://unused/ws"})
        with contextlib.ExitStack() as stack:
            gw: Any
            if args.workers:
                from bench.scale import CollabDev

                args.out.mkdir(parents=True, exist_ok=True)
                log = args.out / "large_workspace-collab-dev.log"
                gw = WorkerGateway(stack.enter_context(CollabDev(env, args.workers, log)))
            else:
                gw = stack.enter_context(GatewayProcess(env))
            sc = Scenario("large", 1, args.members, args.editors, args.rate, args.duration, args.warmup, 0.0)
            edits = asyncio.run(run_scenario(sc, gw, (db_url, redis_url), settings, random.Random(args.seed)))
            edits.pop("latency_series", None)
            edits.pop("latency_samples_ms", None)
            results["edits"] = edits
            results["storms"] = [
                asyncio.run(storm(int(n), gw, (db_url, redis_url), settings, args.seed))
                for n in args.storm.split(",") if n.strip()
            ]  # fmt: skip
    results["machine"]["loadavg_after"] = os.getloadavg()
    results["machine"]["uptime"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "large_workspace.json"
    path.write_text(json.dumps(results, indent=1))
    e = results["edits"]["edit_to_peer_ms"]
    met = "yes" if e["p95"] <= TARGET_P95_MS else "no"
    m = results["machine"]
    print(f"\nload average before {m['loadavg_before']}, after {m['loadavg_after']}")
    r = results["edits"]
    print(f"edits: {args.members} members, {args.rate:g} edits/s, {r['deliveries_per_s']:.0f} deliveries/s,"
          f" lost {r['lost']}")  # fmt: skip
    print(f"  edit->peer p50 {e['p50']:.1f} ms  p95 {e['p95']:.1f} ms  p99 {e['p99']:.1f} ms"
          f"  (target p95 <= {TARGET_P95_MS:.0f} ms: {met})")  # fmt: skip
    who = f"stack (gateway + containers, --workers {args.workers})" if args.workers else "gateway"
    print(f"  {who} CPU {results['edits']['gateway_cpu_ms_per_edit']:.1f} ms per edit,"
          f" {results['edits']['gateway_cpu_us_per_delivery']:.0f} us per delivery")  # fmt: skip
    for s in results["storms"]:
        print(f"storm of {s['members']}: all resynced in {s['resynced_s']:.1f} s,"
              f" presence posts {s['presence_posts']} ({s['posts_per_member']:.1f} per member;"
              f" one frame per change to every peer: up to {s['quadratic_reference']}),"
              f" not live {s['not_live']}, deaf {s['deaf']}")  # fmt: skip
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
