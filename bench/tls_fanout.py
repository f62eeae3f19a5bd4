"""A fresh container's first fan-out over TLS, next to a warm one.

    python -m bench.tls_fanout [--recipients 50] [--rtt-ms 1] [--cold 30] [--warm 300]

The Management API is ``bench.tls_endpoint`` in another process (its CPU is not charged here): HTTPS
with a certificate of a local CA, behind a relay that adds ``--rtt-ms`` of round trip (half each
way, every chunk, the TLS handshake's included). The client trusts the CA the standard way, with the
system's roots next to it, so that building a trust store costs what it costs in Lambda (~140
roots): ``--trust dir`` (default) puts them all in a hashed directory (``SSL_CERT_DIR``, OpenSSL reads
the one root it needs, as from ``/etc/ssl/certs`` or AL2023's directory-hash); ``--trust file``
in one bundle (``SSL_CERT_FILE``, parsed whole when the context is built).

* cold: a new ``ManagementApi`` per round (no connection, no TLS session, no resolved address, no
  SSL context: what a new container has), its construction included, then one broadcast;
* cold, opened at init: the same, but the container's init first opened its connections
  (``ManagementApi.warm``, what ``functions/message/handler.py`` does through
  ``collab.ws.message.prepare``); the init's wall and CPU are reported apart, the first fan-out is
  timed from the invocation, as its sender waits for it;
* warm: one ``ManagementApi``, warmed up, then one broadcast per round.

Prints wall p50/p95 of each, the ratios of the p50s, TCP connects and TLS handshakes (of which
resumed) per cold fan-out, and this process's CPU per post.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import summary

BODY = b'{"type":"task.updated","data":{"task":{"id":"x","title":"' + b"a" * 400 + b'"}}}'


def _serve(ca_dir: str, rtt_s: float, ports: Any) -> None:
    import asyncio

    from bench.tls_endpoint import LocalCa, start

    folder = Path(ca_dir)
    ca = LocalCa(folder / "ca.pem", folder / "server.pem", folder / "server.key")

    async def main() -> None:
        port, _servers = await start(ca, "ok", rtt_s=rtt_s)
        ports.put(port)
        await asyncio.Event().wait()

    asyncio.run(main())


def system_bundle() -> bytes:
    import ssl

    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile, "/etc/pki/tls/certs/ca-bundle.crt"):
        if candidate and os.path.isfile(candidate):
            return Path(candidate).read_bytes()
    return b""


def trust(folder: Path, local_root: Path, kind: str) -> None:
    """The system's roots plus the local one, as a bundle (SSL_CERT_FILE) or a hashed directory."""
    import subprocess

    if kind == "file":
        bundle = folder / "bundle.pem"
        bundle.write_bytes(system_bundle() + local_root.read_bytes())
        os.environ["SSL_CERT_FILE"] = str(bundle)
        return
    hashed = folder / "certs"
    hashed.mkdir()
    pem = system_bundle().decode()
    marker = "-----END CERTIFICATE-----"
    for i, block in enumerate(pem.split(marker)[:-1]):
        (hashed / f"root{i:03d}.pem").write_text(block.strip() + "\n" + marker + "\n")
    (hashed / "local.pem").write_bytes(local_root.read_bytes())
    subprocess.run(["openssl", "rehash", str(hashed)], check=True, capture_output=True)
    os.environ.pop("SSL_CERT_FILE", None)
    os.environ["SSL_CERT_DIR"] = str(hashed)


def run(
    recipients: int, rtt_ms: float, cold_rounds: int, warm_rounds: int, kind: str = "dir"
) -> dict[str, float]:
    from bench.tls_endpoint import make_ca
    from collab.adapters import tls

    folder = Path(tempfile.mkdtemp(prefix="collab-tls-fanout-"))
    ca = make_ca(folder)
    trust(folder, ca.ca_file, kind)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    ports: Any = mp.get_context("spawn").Queue()
    server = mp.get_context("spawn").Process(
        target=_serve, args=(str(folder), rtt_ms / 1000, ports), daemon=True
    )
    server.start()
    try:
        endpoint = f"https://127.0.0.1:{ports.get(timeout=30)}/prod"
        from collab.adapters.apigw.management import ManagementApi

        cids = [f"L0SM9cOFvHcCI{i:03d}=" for i in range(recipients)]
        cold: list[float] = []
        cold_cpu = 0.0
        handshakes, resumed, connects = [], [], []
        for _ in range(cold_rounds):
            tls.reset()  # a new container builds its trust store again
            c0, t0 = time.process_time(), time.perf_counter()
            api = ManagementApi(endpoint)
            receipt = api.broadcast(cids, BODY)
            cold.append((time.perf_counter() - t0) * 1000)
            cold_cpu += time.process_time() - c0
            assert len(receipt.delivered) == recipients, receipt.counts()
            stats = api.stats()
            handshakes.append(stats["handshakes"])
            resumed.append(stats["resumed"])
            connects.append(stats["connects"])
            api._broadcaster().close()
        inited: list[float] = []
        init_wall: list[float] = []
        init_cpu = inited_cpu = 0.0
        for _ in range(cold_rounds):
            tls.reset()
            c0, t0 = time.process_time(), time.perf_counter()
            api = ManagementApi(endpoint)
            opened = api.warm()
            c1, t1 = time.process_time(), time.perf_counter()
            receipt = api.broadcast(cids, BODY)
            inited.append((time.perf_counter() - t1) * 1000)
            init_wall.append((t1 - t0) * 1000)
            init_cpu += c1 - c0
            inited_cpu += time.process_time() - c1
            assert opened == 25 and len(receipt.delivered) == recipients, receipt.counts()
            api._broadcaster().close()
        api = ManagementApi(endpoint)
        for _ in range(30):
            api.broadcast(cids, BODY)
        warm: list[float] = []
        c0 = time.process_time()
        for _ in range(warm_rounds):
            t0 = time.perf_counter()
            receipt = api.broadcast(cids, BODY)
            warm.append((time.perf_counter() - t0) * 1000)
            assert len(receipt.delivered) == recipients
        warm_cpu = time.process_time() - c0
    finally:
        server.terminate()
    c, w, i = summary(cold), summary(warm), summary(inited)
    return {
        "cold_p50": c["p50"],
        "cold_p95": c["p95"],
        "inited_p50": i["p50"],
        "inited_p95": i["p95"],
        "inited_ratio": i["p50"] / w["p50"],
        "init_wall_ms": statistics.median(init_wall),
        "init_cpu_ms": init_cpu / cold_rounds * 1000,
        "inited_cpu_us_per_post": inited_cpu / cold_rounds / recipients * 1e6,
        "warm_p50": w["p50"],
        "warm_p95": w["p95"],
        "ratio": c["p50"] / w["p50"],
        "connects": statistics.median(connects),
        "handshakes": statistics.median(handshakes),
        "resumed": statistics.median(resumed),
        "cold_cpu_us_per_post": cold_cpu / cold_rounds / recipients * 1e6,
        "warm_cpu_us_per_post": warm_cpu / warm_rounds / recipients * 1e6,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipients", type=int, default=50)
    ap.add_argument("--rtt-ms", type=float, default=1.0)
    ap.add_argument("--cold", type=int, default=30)
    ap.add_argument("--warm", type=int, default=300)
    ap.add_argument("--trust", choices=["dir", "file"], default="dir")
    args = ap.parse_args()
    r = run(args.recipients, args.rtt_ms, args.cold, args.warm, args.trust)
    print(
        f"fan-out to {args.recipients} over TLS, {args.rtt_ms} ms added round trip, trust store: {args.trust}"
    )
    print(f"{'':<6} {'p50 ms':>8} {'p95 ms':>8} {'CPU us/post':>12}")
    print(f"{'first':<6} {r['cold_p50']:>8.2f} {r['cold_p95']:>8.2f} {r['cold_cpu_us_per_post']:>12.0f}")
    print(
        f"{'first (init opened 25)':<6} {r['inited_p50']:>8.2f} {r['inited_p95']:>8.2f}"
        f" {r['inited_cpu_us_per_post']:>12.0f}"
    )
    print(f"{'warm':<6} {r['warm_p50']:>8.2f} {r['warm_p95']:>8.2f} {r['warm_cpu_us_per_post']:>12.0f}")
    print(
        f"first / warm p50: {r['ratio']:.2f}; per first fan-out: {r['connects']:.0f} connects,"
        f" {r['handshakes']:.0f} TLS handshakes ({r['resumed']:.0f} resumed)"
    )
    print(
        f"first after an init that opened 25 connections / warm p50: {r['inited_ratio']:.2f};"
        f" that init: {r['init_wall_ms']:.1f} ms wall, {r['init_cpu_ms']:.1f} ms CPU"
        " (25 connects, 25 handshakes)"
    )


if __name__ == "__main__":
    main()
