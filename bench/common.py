"""Shared pieces of the benchmarks: services, a fast Management API sink, statistics."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import statistics
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def services() -> Iterator[tuple[str, str]]:
    """DATABASE_URL / REDIS_URL from the environment, or embedded ones in a temporary folder.

    The benchmark runs in a database of its own, created and dropped here."""
    import uuid

    import psycopg

    from collab.adapters.postgres.migrate import migrate

    db, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    emb = None
    if not db or not redis_url:
        from collab_dev import embedded

        emb = embedded.start(Path(tempfile.mkdtemp(prefix="collab-bench-")))
        db, redis_url = db or emb.database_url, redis_url or emb.redis_url
    name = f"collab_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(db, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    from urllib.parse import urlsplit, urlunsplit

    u = urlsplit(db)
    bench_db = urlunsplit((u.scheme, u.netloc, f"/{name}", u.query, u.fragment))
    migrate(bench_db)
    if redis_url.startswith("redis://"):
        redis_url = redis_url.rsplit("/", 1)[0] + "/15" if redis_url.count("/") > 2 else redis_url + "/15"
    try:
        yield bench_db, redis_url
    finally:
        with psycopg.connect(db, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if emb:
            emb.stop()


class _Sink(asyncio.Protocol):
    """Answers 200 to each request of a keep-alive connection (pipelined ones too) with no
    per-request objects, so that the sink, not the handler, is never what a fan-out waits for."""

    OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n"

    def __init__(self) -> None:
        self.buf = b""
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        answers = 0
        while (end := buf.find(b"\r\n\r\n")) >= 0:
            head = buf[:end].lower()
            at = head.find(b"\r\ncontent-length:")
            length = int(head[at + 17 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
            if len(buf) < end + 4 + length:
                break
            buf = buf[end + 4 + length :]
            answers += 1
        self.buf = buf
        if answers:
            self.transport.write(self.OK * answers)


async def _serve(port_out: Any, ready: Any) -> None:
    """A minimal keep-alive HTTP/1.1 server answering 200 to everything, like a healthy
    Management API with no network latency."""
    server = await asyncio.get_running_loop().create_server(_Sink, "127.0.0.1", 0, backlog=1024)
    port_out.value = server.sockets[0].getsockname()[1]
    ready.set()
    async with server:
        await server.serve_forever()


def _sink_main(port_out: Any, ready: Any) -> None:
    asyncio.run(_serve(port_out, ready))


@contextmanager
def fast_sink() -> Iterator[str]:
    """A Management API endpoint in another process (its CPU is not charged to the handler)."""
    port = mp.Value("i", 0)
    ready = mp.Event()
    proc = mp.Process(target=_sink_main, args=(port, ready), daemon=True)
    proc.start()
    ready.wait(10)
    try:
        yield f"http://127.0.0.1:{port.value}"
    finally:
        proc.terminate()
        proc.join(5)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": pct(values, 50),
        "p95": pct(values, 95),
        "p99": pct(values, 99),
        "mean": statistics.fmean(values),
        "n": len(values),
    }
