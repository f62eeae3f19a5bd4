"""The local gateway's Management API alone: CPU per POST and how long a 49-post fan-out takes.

    python -m bench.emulator_posts [--peers 49] [--rounds 200] [--rate 22] [--seconds 10]

Why this exists: in ``bench.e2e`` the gateway process spends most of its CPU serving the Management
API posts of the handlers' fan-outs, not running the handlers. This isolates that path: the local
gateway (``collab_dev.emulator.LocalGateway``, no handlers but one that tells a client its connection id)
runs in a process of its own; ``--peers`` WebSocket clients (aiohttp, one asyncio loop in this
process) connect to it; a thread here posts one message to all of them through
``collab.adapters.apigw.management.ManagementApi``, the handlers' own client (SigV4, keep-alive
connections, up to 32 posts in flight), as a ``task.update`` fan-out does.

Two runs:
  closed loop: ``--rounds`` fan-outs back to back: posts/s and the gateway's CPU per POST;
  paced: ``--rate`` fan-outs per second for ``--seconds`` (22/s is bench.e2e's scenario (a)): per
      delivery, post sent -> frame received (p50/p95/p99), and per fan-out its last peer.

The post's send time (CLOCK_MONOTONIC) travels in its body; each client subtracts it on receipt.
The clients and the poster share this process, so latencies include their own queueing; the
gateway's CPU is read from /proc for its process only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench.e2e import RESULTS, dist, process_cpu_s


def whoami(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``$default``: answer any frame with the sender's connection id."""
    return {"statusCode": 200, "body": event["requestContext"]["connectionId"]}


def _gateway_main(conn: Any, gc_freeze: bool) -> None:
    import gc
    import logging

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)

    async def serve() -> None:
        from collab_dev.emulator.local_gateway import LocalGateway

        gateway = LocalGateway(routes={"$default": whoami}, sweep_interval_s=None)
        await gateway.start()
        if gc_freeze:
            gc.collect()
            gc.freeze()
        conn.send(gateway.port)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, conn.recv)
        await gateway.stop()

    asyncio.run(serve())


class Peers:
    """``n`` WebSocket clients; each records post->receipt latencies from the body's send time."""

    def __init__(self, url: str, n: int) -> None:
        self.url, self.n = url, n
        self.cids: list[str] = []
        self.received: list[tuple[int, int]] = []  # (sent ns, received ns)
        self._tasks: list[asyncio.Task[None]] = []

    async def open(self, session: Any) -> None:
        for _ in range(self.n):
            ws = await session.ws_connect(self.url)
            await ws.send_str("whoami")
            self.cids.append((await ws.receive()).data)
            self._tasks.append(asyncio.create_task(self._read(ws)))

    async def _read(self, ws: Any) -> None:
        async for msg in ws:
            received = time.monotonic_ns()
            self.received.append((int(json.loads(msg.data)["t"]), received))

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _fanout(api: Any, cids: list[str]) -> int:
    body = json.dumps({"type": "bench", "t": time.monotonic_ns(), "pad": "x" * 300}).encode()
    receipt = api.broadcast(cids, body)
    return len(receipt.delivered)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import aiohttp

    from collab.adapters.apigw.management import ManagementApi

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_gateway_main, args=(child, args.gc_freeze), daemon=True)
    proc.start()
    if not parent.poll(60):
        proc.terminate()
        raise RuntimeError("the gateway did not start within 60 s")
    port = int(parent.recv())
    assert proc.pid is not None
    pid = proc.pid
    base = f"http://127.0.0.1:{port}"
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    os.environ.setdefault("AWS_REGION", "us-east-1")
    api = ManagementApi(base)
    out: dict[str, Any] = {}
    try:
        async with aiohttp.ClientSession() as session:
            peers = Peers(f"ws://127.0.0.1:{port}/ws", args.peers)
            await peers.open(session)
            for _ in range(20):  # warm-up: keep-alive connections opened, code paths hot
                await asyncio.to_thread(_fanout, api, peers.cids)
            await asyncio.sleep(0.5)

            # closed loop
            peers.received.clear()
            cpu0, t0 = process_cpu_s(pid), time.perf_counter()
            delivered = 0
            for _ in range(args.rounds):
                delivered += await asyncio.to_thread(_fanout, api, peers.cids)
            elapsed = time.perf_counter() - t0
            cpu = process_cpu_s(pid) - cpu0
            posts = args.rounds * len(peers.cids)
            out["closed_loop"] = {
                "fanouts": args.rounds,
                "posts": posts,
                "delivered": delivered,
                "posts_per_s": posts / elapsed,
                "gateway_cpu_share": cpu / elapsed,
                "gateway_cpu_us_per_post": cpu / posts * 1e6,
            }
            await asyncio.sleep(0.5)

            # paced, open loop
            peers.received.clear()
            stop = threading.Event()
            sent = [0]

            def pace() -> None:
                interval, k, start = 1 / args.rate, 0, time.perf_counter()
                while not stop.is_set() and k < args.rate * args.seconds:
                    due = start + k * interval
                    time.sleep(max(0.0, due - time.perf_counter()))
                    _fanout(api, peers.cids)
                    sent[0] += 1
                    k += 1

            cpu0, t0 = process_cpu_s(pid), time.perf_counter()
            await asyncio.to_thread(pace)
            await asyncio.sleep(1.0)
            elapsed = time.perf_counter() - t0 - 1.0
            cpu = process_cpu_s(pid) - cpu0
            lat = [(r - s) / 1e6 for s, r in peers.received]
            last: dict[int, float] = {}
            for s, r in peers.received:
                last[s] = max(last.get(s, 0.0), (r - s) / 1e6)
            out["paced"] = {
                "rate": args.rate,
                "fanouts": sent[0],
                "deliveries": len(lat),
                "deliveries_per_s": len(lat) / elapsed,
                "post_to_peer_ms": dist(lat),
                "last_peer_ms": dist(list(last.values())),
                "gateway_cpu_share": cpu / elapsed,
                "gateway_cpu_us_per_post": cpu / max(len(lat), 1) * 1e6,
            }
            await peers.close()
    finally:
        parent.send("stop")
        proc.join(20)
        if proc.is_alive():
            proc.terminate()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.emulator_posts",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--peers", type=int, default=49, help="WebSocket clients, one post each per fan-out")
    ap.add_argument("--rounds", type=int, default=200, help="fan-outs in the closed loop")
    ap.add_argument("--rate", type=float, default=22, help="fan-outs per second in the paced run")
    ap.add_argument("--seconds", type=float, default=10, help="length of the paced run")
    ap.add_argument("--gc-freeze", action="store_true", help="gc.freeze() in the gateway once it serves")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    load_before = os.getloadavg()
    results = asyncio.run(run(args))
    args_given = argv if argv is not None else sys.argv[1:]
    results["command"] = "python -m bench.emulator_posts " + " ".join(args_given)
    results["machine"] = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "emulator_posts.json").write_text(json.dumps(results, indent=1))
    c, p = results["closed_loop"], results["paced"]
    print(
        f"closed loop: {c['posts']} posts in {c['fanouts']} fan-outs of {args.peers}:"
        f" {c['posts_per_s']:.0f} posts/s, gateway CPU {100 * c['gateway_cpu_share']:.0f}% of a core,"
        f" {c['gateway_cpu_us_per_post']:.0f} us per POST"
    )
    lat, last = p["post_to_peer_ms"], p["last_peer_ms"]
    print(
        f"paced {p['rate']:g} fan-outs/s: {p['deliveries_per_s']:.0f} deliveries/s,"
        f" post->peer p50 {lat['p50']:.1f} p95 {lat['p95']:.1f} p99 {lat['p99']:.1f} ms,"
        f" last peer p50 {last['p50']:.1f} p95 {last['p95']:.1f} ms,"
        f" gateway CPU {100 * p['gateway_cpu_share']:.0f}%, {p['gateway_cpu_us_per_post']:.0f} us per POST"
    )
    la = results["machine"]["loadavg_before"]
    print(f"load average before: {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
