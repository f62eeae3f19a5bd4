"""One fan-out alone: ``ManagementApi.broadcast`` of a ~500-byte event to N connections.

    python -m bench.broadcast [--recipients 50] [--rounds 400]

The Management API is ``bench.common.fast_sink`` (a keep-alive HTTP server in another process that
answers 200 at once), so this is the client's own cost: signing, writing, reading and parsing the
answers over keep-alive connections from one thread (``collab.adapters.apigw.http_pool``).
Prints the wall time of a whole broadcast (p50/p95) and this process's CPU per broadcast and per post.
"""

from __future__ import annotations

import argparse
import os
import time

from bench.common import fast_sink, summary


def run(recipients: int, rounds: int) -> dict[str, float]:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    from collab.adapters.apigw.management import ManagementApi

    with fast_sink() as endpoint:
        api = ManagementApi(endpoint)
        # API Gateway's connection ids: 16 base64 characters, '=' last
        cids = [f"L0SM9cOFvHcCI{i:03d}=" for i in range(recipients)]
        body = b'{"type":"task.updated","data":{"task":{"id":"x","title":"' + b"a" * 400 + b'"}}}'
        for _ in range(50):  # warm-up: connections opened, caches filled
            api.broadcast(cids, body)
        wall: list[float] = []
        cpu0 = time.process_time()
        for _ in range(rounds):
            t0 = time.perf_counter()
            receipt = api.broadcast(cids, body)
            wall.append((time.perf_counter() - t0) * 1000)
            assert len(receipt.delivered) == recipients, receipt.counts()
        cpu_ms = (time.process_time() - cpu0) / rounds * 1000
    s = summary(wall)
    return {"p50": s["p50"], "p95": s["p95"], "cpu_ms": cpu_ms, "cpu_us_per_post": cpu_ms / recipients * 1000}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipients", type=int, nargs="+", default=[50])
    ap.add_argument("--rounds", type=int, default=400)
    args = ap.parse_args()
    print(f"{'posts':>6} {'wall p50 ms':>12} {'wall p95 ms':>12} {'CPU ms':>8} {'CPU us/post':>12}")
    for n in args.recipients:
        r = run(n, args.rounds)
        print(f"{n:>6} {r['p50']:>12.2f} {r['p95']:>12.2f} {r['cpu_ms']:>8.2f} {r['cpu_us_per_post']:>12.1f}")


if __name__ == "__main__":
    main()
