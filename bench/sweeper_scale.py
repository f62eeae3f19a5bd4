"""The sweeper at scale: 100,000 registered connections in Redis, 1% overdue.

    python -m bench.sweeper_scale [--runs 3] [--per-workspace 10]

Each scenario registers its connections through the real registration script
(``tests/support/connections_bulk.py``) in a redis-server of its own, with a deadline in the past for
the overdue ones, then runs the scheduled sweep (``collab.ws.sweeper.handle``: the sweep of overdue
connections, the reconciliation of recent revocations, the retention pruning) against real
Postgres and a local Management API sink. Printed per scenario, the median of ``--runs``: the
sweep's wall time and CPU, Redis round trips and commands (counted where redis-py packs them), and
the keys they name. For comparison, the reads the previous reconciliation made every minute (the
whole sweeper index by ZSCAN, then every workspace's registry) are timed on the same data.

Results: a table on stdout and ``bench/results/sweeper_scale.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
SCENARIOS = ((10_000, 100), (100_000, 100), (100_000, 1_000), (100_000, 2_000))


def _full_scan(store: Any) -> tuple[float, int]:
    """What the previous reconciliation read every minute: the whole index, then every registry."""
    from collab.adapters.redis import keys

    t0 = time.perf_counter()
    wids: set[str] = set()
    cursor, calls = 0, 0
    while True:
        cursor, items = store.r.zscan(keys.SWEEP, cursor, count=1000)
        calls += 1
        for member, _ in items:
            wids.add(member.decode().partition("|")[0])
        if int(cursor) == 0:
            break
    pipe = store.r.pipeline(transaction=False)
    for w in sorted(wids):
        pipe.hgetall(keys.ws(w, "conns"))
    pipe.execute()
    return (time.perf_counter() - t0) * 1000, calls + len(wids)


def run(runs: int, per_workspace: int) -> dict[str, Any]:
    import redis

    from bench.common import fast_sink, services
    from bench.memory import _redis_server
    from collab import runtime
    from collab.config import load_settings
    from collab.ws import sweeper
    from tests.support.connections_bulk import register_many
    from tests.support.redis_wire import counting

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")  # the sink does not check signatures
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    proc, port, _ = _redis_server()
    out: dict[str, Any] = {"per_workspace": per_workspace, "runs": runs, "scenarios": []}
    try:
        for _ in range(50):
            try:
                redis.Redis(port=port).ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)
        with services() as (db, _unused), fast_sink() as endpoint:
            settings = load_settings(
                {
                    "DATABASE_URL": db,
                    "REDIS_URL": f"redis://127.0.0.1:{port}/0",
                    "JWT_SECRET": "s" * 32,
                    "CONNECTIONS_ENDPOINT": endpoint,
                }
            )
            rt = runtime.Runtime(settings)
            import logging

            logging.getLogger("collab").setLevel(logging.ERROR)
            sweeper.handle(rt)  # warm: clients, scripts
            for total, overdue in SCENARIOS:
                samples: list[dict[str, float]] = []
                for _ in range(runs):
                    rt.store.r.flushdb()
                    register_many(rt.store, total=total, per_workspace=per_workspace, overdue=overdue,
                                  now_ms=rt.clock.now_ms())  # fmt: skip
                    scan_ms, scan_calls = _full_scan(rt.store)
                    cpu0, t0 = time.process_time(), time.perf_counter()
                    with counting() as wire:
                        result = sweeper.handle(rt)
                    wall, cpu = (time.perf_counter() - t0) * 1000, (time.process_time() - cpu0) * 1000
                    assert result["removed"] == overdue, result
                    assert rt.store.r.zcard("collab:sweep") == total - overdue
                    samples.append(
                        {"wall_ms": wall, "cpu_ms": cpu, "round_trips": wire.round_trips,
                         "commands": wire.commands, "keys": len(wire.keys), "full_scan_ms": scan_ms,
                         "full_scan_calls": scan_calls}
                    )  # fmt: skip
                row = {"connections": total, "overdue": overdue}
                row.update({k: statistics.median(s[k] for s in samples) for k in samples[0]})
                out["scenarios"].append(row)
                print(
                    f"{total:>11,} {overdue:>8,} {row['wall_ms']:>9.1f} {row['cpu_ms']:>8.1f}"
                    f" {row['round_trips']:>7.0f} {row['commands']:>9.0f} {row['keys']:>7.0f}"
                    f" {row['full_scan_ms']:>13.1f} {row['full_scan_calls']:>11.0f}",
                    flush=True,
                )
    finally:
        proc.terminate()
        proc.wait(10)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--per-workspace", type=int, default=10, help="connections per workspace")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    load = os.getloadavg()
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(
        f"{'connections':>11} {'overdue':>8} {'sweep ms':>9} {'CPU ms':>8} {'RTs':>7} {'commands':>9}"
        f" {'keys':>7} {'full scan ms':>13} {'scan calls':>11}"
    )
    out = run(args.runs, args.per_workspace)
    out["load_start"] = load
    out["load_end"] = os.getloadavg()
    out["uptime"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"uptime at the end: {out['uptime']}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sweeper_scale.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
