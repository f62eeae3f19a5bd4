"""Many workspaces at once through ``collab dev``: 100 workspaces of 10 plus one of 50, mixed traffic.

    python -m bench.scale                 the load, then a sweep of edit rates (saturation point)
    python -m bench.scale --quick         a short run: 20 workspaces of 10 + one of 50, 15 s
    python -m bench.scale --soak 1800     30 minutes of the load: memory, fds, connections, p95 drift

What it runs: ``collab dev --workers N`` as a subprocess (the handlers in worker processes, real
Postgres and Redis from ``DATABASE_URL`` / ``REDIS_URL``, a database of its own), and real WebSocket
clients (``tests.support.board_client.BoardClient``, the Python twin of ``web/collab-client.js``)
in ``--client-procs`` processes of their own, each holding whole workspaces. Every client

* edits one of its workspace's tasks once every ``--edit-every`` seconds (open loop, each client
  at its own phase; 1,050 clients every 10 s is ~105 edits/s), the send time in the title;
* sends ``presence.update`` (what it views) once every ``--presence-every`` seconds;
* heartbeats every 30 s (the contract's period, v1 heartbeats: answered each time);
* and each client process drops one live client's socket every ``--drop-every`` seconds (TCP abort,
  the gateway sees 1006); it reconnects with a fresh ticket and syncs, as the browser does.

Measured: edit->peer p50/p95/p99 per workspace size (each peer subtracts the send time, one
CLOCK_MONOTONIC for every process), edits/s and deliveries/s, reconnect->resynced, nothing lost
(every client's board and seq equal the server's at the end, every live client registered), CPU
per edit by process group (gateway, workers, Postgres, Redis, clients: from /proc) and where the
stack's CPU goes (py-spy over ``collab dev`` and its workers, ``--profile``). After the main phase a
sweep of edit rates finds the saturation point: the edits/s at which edit->peer p95 crosses 100 ms.

``--soak S`` runs the main load for S seconds and samples every ``--sample-every`` seconds: RSS of
the gateway and each worker, Redis ``used_memory`` and keys, open fds, the gateway's TCP
connections, Postgres and Redis client connections of the run, CPU and the load average; it reports
each memory series' slope (least squares, MB per hour over the run after the first 5 minutes) and
p95 in the first vs the last 5 minutes. Results: ``bench/results/scale.json`` (or ``scale-soak.json``)
and a PNG next to it.

Postgres and Redis are the machine's, shared with whatever else runs on it: their CPU is counted
whole (an upper bound), and Redis ``used_memory`` is the server's (the run's keys are counted apart).
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import fcntl
import gc
import itertools
import json
import multiprocessing as mp
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.e2e import dist, progress, summarize_profile

RESULTS = Path(__file__).resolve().parent / "results"
JWT_SECRET = "bench-scale-secret-0123456789abcdef0123456789"
TARGET_P95_MS = 50.0  # edit->peer at ~100 edits/s over 1,050 connections (issue 15)
SATURATED_P95_MS = 100.0  # the saturation point: where edit->peer p95 crosses this
SETTLE_S = 5.0  # after the last edit: fan-outs land and reconnects finish before boards are compared


@dataclass
class Phase:
    name: str
    edit_every_s: float  # each client edits once this often
    warmup_s: float  # not measured (edits run)
    duration_s: float  # measured
    rest_s: float = 0.0  # then no edits for this long: what queued drains before the next phase


# -- the clients' processes ---------------------------------------------------------------------
def _clients_main(conn: Any, plan: dict[str, Any]) -> None:
    parent = os.getppid()

    def orphaned() -> None:  # the bench was killed: do not reconnect forever
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=orphaned, daemon=True).start()
    try:
        conn.send(asyncio.run(_clients(conn, plan)))
    except BaseException as exc:
        conn.send({"error": repr(exc)})
        raise


async def _clients(conn: Any, plan: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    from collab_dev.gc_pauses import watch as watch_gc
    from tests.support.board_client import BoardClient, now_ns
    from tests.support.workspaces import unregistered, workspace_seq

    rng = random.Random(plan["seed"])
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))
    api = plan["api"]
    # deliveries: (workspace size, send ns, latency ms) as three arrays, every one of the run
    sizes = array.array("H")
    sent_at = array.array("q")
    latency = array.array("f")
    presence_at = array.array("q")  # presence frames received (receive ns)
    edits = array.array("q")  # send ns of each edit sent
    acked = array.array("q")  # send ns of each edit acknowledged ok
    refused: Counter[str] = Counter()
    skipped = [0]
    size_of: dict[str, int] = {}
    # this process's garbage collections of 20 ms or more: (end ns, ms, generation). A collection
    # delays every frame this process receives meanwhile, which then counts as edit->peer latency
    gc_pauses: list[tuple[int, float, int]] = []
    watch_gc(20, lambda ms, generation: gc_pauses.append((now_ns(), ms, generation)))

    def on_event(client: BoardClient, frame: dict[str, Any], received: int) -> None:
        if frame["type"] != "task.updated":
            return
        title = frame["data"]["task"].get("title", "")
        if title.startswith("s "):
            sent = int(title[2:].split(" ", 1)[0])
            sizes.append(size_of[client.workspace_id])
            sent_at.append(sent)
            latency.append((received - sent) / 1e6)

    clients: list[BoardClient] = []
    for ws in plan["workspaces"]:
        size_of[ws["workspace_id"]] = len(ws["members"])
        for m in ws["members"]:
            c = BoardClient(
                http,
                api,
                user_id=m["user_id"],
                token=m["token"],
                workspace_id=ws["workspace_id"],
                tasks=ws["tasks"],
                last_seq=ws["last_seq"],
                rng=random.Random(rng.random()),
                user_agent=f"collab-scale {m['user_id']}",
            )
            c.on_event = on_event
            clients.append(c)

    def presence_seen() -> int:
        return sum(c.counts["presence.updated"] + c.counts["presence.batch"] for c in clients)

    try:
        gate = asyncio.Semaphore(24)  # the initial connect is not what is measured

        async def start(c: BoardClient) -> None:
            async with gate:
                c.start()
                await asyncio.wait_for(c.live.wait(), 120)

        t = time.perf_counter()
        await asyncio.gather(*(start(c) for c in clients))
        # what the connects built (clients, boards, sockets) lives to the end: out of the collector's
        # generations, so a full collection later walks only what the run allocates (as the gateway)
        gc.collect()
        gc.freeze()
        conn.send({"ready": len(clients), "connect_s": time.perf_counter() - t})
        go_ns = await asyncio.to_thread(conn.recv)  # every client process starts at this moment
        phases = [Phase(**p) for p in plan["phases"]]
        bounds = []
        at = go_ns
        for ph in phases:
            end = at + int((ph.warmup_s + ph.duration_s) * 1e9)
            bounds.append((at, end, ph))
            at = end + int(ph.rest_s * 1e9)
        stop_at = at
        cpu0 = time.process_time()
        pending: list[asyncio.Future[Any]] = []

        async def edit(c: BoardClient, task_id: str) -> None:
            sent = now_ns()
            edits.append(sent)
            data = await c.update_task(task_id, {"title": f"s {sent} {c.user_id}"})
            if data.get("ok"):
                acked.append(sent)
            else:
                refused[str((data.get("error") or {}).get("code"))] += 1

        async def editor(c: BoardClient) -> None:
            task_ids = sorted(c.tasks)
            r = random.Random(c.rng.random())
            for begin, end, ph in bounds:
                due = begin + int(r.random() * ph.edit_every_s * 1e9)  # each client at its own phase
                while due < end:
                    await asyncio.sleep(max(0.0, (due - now_ns()) / 1e9))
                    due += int(ph.edit_every_s * 1e9)
                    if c.state != "live":
                        skipped[0] += 1
                        continue
                    pending.append(asyncio.ensure_future(edit(c, r.choice(task_ids))))
                    if len(pending) > 5000:
                        pending[:] = [f for f in pending if not f.done()]

        async def presence(c: BoardClient) -> None:
            every = plan["presence_every_s"]
            if not every:
                return
            task_ids = sorted(c.tasks)
            r = random.Random(c.rng.random())
            await asyncio.sleep(r.random() * every)
            while now_ns() < stop_at:
                await c.update_presence("active", r.choice(task_ids))
                await asyncio.sleep(every)

        async def drops() -> None:
            every = plan["drop_every_s"]
            if not every:
                return
            while now_ns() + int(every * 1e9) < stop_at:
                await asyncio.sleep(every)
                live = [c for c in clients if c.state == "live"]
                if live:
                    rng.choice(live).drop()

        async def count_presence() -> None:
            while now_ns() < stop_at + int(SETTLE_S * 1e9):
                before = presence_seen()
                await asyncio.sleep(1)
                presence_at.extend([now_ns()] * (presence_seen() - before))

        counter = asyncio.create_task(count_presence())
        await asyncio.gather(*(editor(c) for c in clients), *(presence(c) for c in clients), drops())
        cpu1 = time.process_time()
        pending = [f for f in pending if not f.done()]
        if pending:
            await asyncio.wait(pending, timeout=60)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(c.live.wait() for c in clients)), 60)
        await asyncio.sleep(SETTLE_S)
        counter.cancel()
        lost = behind = -1
        deaf: list[str] = []
        seqs: dict[str, int] = {}
        verify_error = None
        try:  # a failing check must not lose the run's measurements
            lost, behind = await _verify(plan, clients)
            deaf = await asyncio.to_thread(unregistered, plan["redis_url"], clients)
            seqs = await asyncio.to_thread(workspace_seq, plan["database_url"], list(size_of))
        except Exception as exc:  # reported in the results
            verify_error = repr(exc)
        counts: Counter[str] = Counter()
        for c in clients:
            counts.update(c.counts)
        return {
            "clients": len(clients),
            "sizes": sizes.tobytes(),
            "sent_at": sent_at.tobytes(),
            "latency": latency.tobytes(),
            "presence_at": presence_at.tobytes(),
            "edits": edits.tobytes(),
            "acked": acked.tobytes(),
            "refused": dict(refused),
            "skipped": skipped[0],
            "reconnects": [(r.down_ns, r.total_ms) for c in clients for r in c.reconnects if r.synced_ns],
            "lost": lost,
            "behind": behind,
            "deaf": deaf,
            "workspace_seq_max": max(seqs.values(), default=0),
            "verify_error": verify_error,
            "gc_pauses": gc_pauses,
            "cpu_s": cpu1 - cpu0,
            "counts": dict(counts),
        }
    finally:
        await asyncio.gather(*(c.stop() for c in clients), return_exceptions=True)
        await http.close()


async def _verify(plan: dict[str, Any], clients: list[Any]) -> tuple[int, int]:
    """(task versions some client holds that differ from the server's, clients whose last seq is
    not their workspace's)."""
    from tests.support.workspaces import workspace_seq

    by_ws: dict[str, list[Any]] = {}
    for c in clients:
        by_ws.setdefault(c.workspace_id, []).append(c)
    seqs = await asyncio.to_thread(workspace_seq, plan["database_url"], list(by_ws))
    lost = behind = 0
    for wid, members in by_ws.items():
        page = await members[0].api("GET", f"/workspaces/{wid}/tasks?limit=100")
        server = {t["id"]: t["version"] for t in page["items"]}
        for c in members:
            lost += sum(1 for tid, v in server.items() if c.tasks.get(tid, {}).get("version") != v)
            behind += c.last_seq != seqs[wid]
    return lost, behind


# -- collab dev, as a subprocess ------------------------------------------------------------------
class CollabDev:
    """``collab dev --workers N`` on a free port; its output goes to a log file."""

    def __init__(self, env: dict[str, str], workers: int, log_path: Path) -> None:
        self.env, self.workers, self.log_path = env, workers, log_path
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> CollabDev:
        import urllib.request

        exe = Path(sys.executable).with_name("collab")
        cmd = [str(exe), "dev", "--port", str(self.port), "--workers", str(self.workers)]
        self._log = open(self.log_path, "wb")  # closed in __exit__
        self.proc = subprocess.Popen(
            cmd,
            env={**os.environ, **self.env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=tempfile.gettempdir(),
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"collab dev exited ({self.proc.returncode}); see {self.log_path}")
            try:
                urllib.request.urlopen(f"{self.http_url}/", timeout=2).read()
                return self
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"collab dev did not answer within 120 s; see {self.log_path}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # Its graceful stop runs every connection's $disconnect (each holds a leave up to 1 s);
            # nothing is measured any more: 10 s, then kill (the workers exit when their pipe closes).
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def workers_pids(self) -> list[int]:
        import psutil

        out = []
        for child in psutil.Process(self.pid).children():
            with contextlib.suppress(psutil.Error):
                if "forkserver" in " ".join(child.cmdline()):  # the containers' parent
                    out += [w.pid for w in child.children()]
        return out


# -- what the machine spends --------------------------------------------------------------------
def _cpu_s(pids: list[int]) -> float:
    total = 0.0
    tck = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        with contextlib.suppress(OSError, IndexError):
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tck
    return total


def _named(name: str) -> list[int]:
    import psutil

    return [p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == name]


def _machine_times_s() -> list[float]:
    """The machine's CPU seconds since boot by state (/proc/stat's first line: user, nice, system,
    idle, iowait, irq, softirq, steal, ...)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    tck = os.sysconf("SC_CLK_TCK")
    return [t / tck for t in ticks]


def _machine_stalls_s() -> dict[str, float]:
    """CPU seconds the machine spent waiting for its disks (iowait) and that its hypervisor gave to
    other guests (steal), since boot: a minute with more of either is a minute the stack and the
    clients could not run when they were ready to."""
    times = _machine_times_s()
    return {"iowait_s": times[4], "steal_s": times[7] if len(times) > 7 else 0.0}


def _machine_cpu_s() -> float:
    times = _machine_times_s()
    return sum(times) - times[3] - times[4]  # all but idle and iowait


class Groups:
    """CPU seconds of each process group, read together."""

    def __init__(self, dev: CollabDev, clients: list[int]) -> None:
        self.dev, self.clients = dev, clients

    def read(self) -> dict[str, float]:
        return {
            "gateway": _cpu_s([self.dev.pid]),
            "workers": _cpu_s(self.dev.workers_pids()),
            "postgres": _cpu_s(_named("postgres")),
            "redis": _cpu_s(_named("redis-server")),
            "clients": _cpu_s(self.clients),
            "machine": _machine_cpu_s(),
        }


def _sample(dev: CollabDev, db_url: str, redis_url: str, db_name: str, db_index: int) -> dict[str, Any]:
    """Memory, fds and connections now."""
    import psutil
    import redis

    gw = psutil.Process(dev.pid)
    workers = [psutil.Process(p) for p in dev.workers_pids()]
    r = redis.Redis.from_url(redis_url)
    try:
        info = r.info("memory")
        redis_clients = sum(1 for c in r.client_list() if int(c.get("db", -1)) == db_index)
        keys = r.dbsize()
    finally:
        r.close()
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as admin:
        pg = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (db_name,)).fetchone()
        # Postgres' own periodic work: checkpoints (the server's) and autovacuum/analyze (the run's)
        checkpoints = admin.execute(
            "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter"
        ).fetchone()
        vacuums = admin.execute(
            "SELECT coalesce(sum(autovacuum_count + autoanalyze_count), 0) FROM pg_stat_user_tables"
        ).fetchone()
    return {
        **_machine_stalls_s(),
        "pg_checkpoints": int(checkpoints[0]) if checkpoints else 0,
        "pg_autovacuums": int(vacuums[0]) if vacuums else 0,
        "t": time.monotonic(),
        "load1": os.getloadavg()[0],
        "gateway_rss_mb": gw.memory_info().rss / 2**20,
        "workers_rss_mb": [w.memory_info().rss / 2**20 for w in workers],
        "gateway_fds": gw.num_fds(),
        "workers_fds": sum(w.num_fds() for w in workers),
        "gateway_tcp": len(gw.net_connections("tcp")),
        "redis_used_mb": int(info["used_memory"]) / 2**20,
        "redis_keys": int(keys),
        "redis_clients": redis_clients,
        "pg_connections": int(pg[0]) if pg else 0,
    }


def _slope_per_hour(ts: list[float], ys: list[float]) -> float:
    n = len(ts)
    if n < 2:
        return 0.0
    mt, my = sum(ts) / n, sum(ys) / n
    var = sum((t - mt) ** 2 for t in ts)
    return 0.0 if not var else sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / var * 3600


# -- the run ------------------------------------------------------------------------------------
def _split(teams: list[dict[str, Any]], parts: int) -> list[list[dict[str, Any]]]:
    """Whole workspaces per client process, balanced by member count."""
    out: list[list[dict[str, Any]]] = [[] for _ in range(parts)]
    load = [0] * parts
    for t in sorted(teams, key=lambda t: -len(t["members"])):
        i = load.index(min(load))
        out[i].append(t)
        load[i] += len(t["members"])
    return out


def _phase_stats(
    deliveries: tuple[array.array[int], array.array[int], array.array[float]],
    begin: int,
    end: int,
) -> dict[str, Any]:
    sizes, sent, lat = deliveries
    by_size: dict[int, list[float]] = {}
    for s, t, ms in zip(sizes, sent, lat, strict=True):
        if begin <= t < end:
            by_size.setdefault(s, []).append(ms)
    everything = [ms for v in by_size.values() for ms in v]
    return {
        "edit_to_peer_ms": dist(everything),
        "by_workspace_size": {str(k): dist(v) for k, v in sorted(by_size.items())},
        "deliveries": len(everything),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from bench.common import services
    from collab.config import load_settings
    from tests.support.workspaces import make_workspaces

    db_index, _lock = _claim_redis_db()  # held until the run returns
    phases = _phases(args)
    results: dict[str, Any] = {
        "command": "python -m bench.scale " + " ".join(args.argv),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_before": os.getloadavg(),
            "uptime_before": _uptime(),
        },
        "setup": {
            "workspaces": f"{args.workspaces} x {args.members} + {args.large} x {args.large_members}",
            "workers": args.workers,
            "client_procs": args.client_procs,
            "edit_every_s": args.edit_every,
            "presence_every_s": args.presence_every,
            "drop_every_s_per_client_proc": args.drop_every,
            "heartbeat_s": 30,
            "phases": [asdict(p) for p in phases],
        },
    }
    with services() as (db_url, shared_url):
        import redis

        # services() names db 15, which every benchmark flushes; this run takes one of its own
        redis_url = f"{shared_url.rsplit('/', 1)[0]}/{db_index}"
        redis.Redis.from_url(redis_url).flushdb()
        db_name = db_url.rsplit("/", 1)[1]
        env = {
            "DATABASE_URL": db_url,
            "REDIS_URL": redis_url,
            "JWT_SECRET": JWT_SECRET,
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            "POWERTOOLS_METRICS_DISABLED": "true",
        }
        settings = load_settings({**env, "WEBSOCKET_URL": "ws://unused/ws"})
        t = time.perf_counter()
        tag = f"scale-{uuid.uuid4().hex[:6]}"
        teams = make_workspaces(
            db_url, settings, workspaces=args.workspaces, members=args.members, tasks=10, tag=tag
        )
        if args.large:
            teams += make_workspaces(
                db_url, settings, workspaces=args.large, members=args.large_members, tasks=10, tag=tag + "L"
            )
        progress(
            f"{len(teams)} workspaces, {sum(len(t.members) for t in teams)} members"
            f" in {time.perf_counter() - t:.0f} s"
        )
        plain = [
            {
                "workspace_id": t.workspace_id,
                "tasks": t.tasks,
                "last_seq": t.last_seq,
                "members": [{"user_id": m.user_id, "token": m.token} for m in t.members],
            }
            for t in teams
        ]
        log_path = args.out / ("scale-soak-collab-dev.log" if args.soak else "scale-collab-dev.log")
        with CollabDev(env, args.workers, log_path) as dev:
            results["run"] = _drive(args, dev, plain, phases, db_url, redis_url, db_name, db_index)
    results["machine"]["loadavg_after"] = os.getloadavg()
    results["machine"]["uptime_after"] = _uptime()
    return results


def _claim_redis_db() -> tuple[int, Any]:
    """A Redis database index no test process or other run is using, by the test suite's lock files
    (tests/conftest.py takes them from 1 up; this takes them from 14 down). Held while the file is open."""
    for index in range(14, 0, -1):
        fh = open(Path(tempfile.gettempdir()) / f"collab-test-redis-db-{index}.lock", "w")  # noqa: SIM115
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            continue
        return index, fh
    raise RuntimeError("every Redis database 1-14 is in use")


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ""


def _phases(args: argparse.Namespace) -> list[Phase]:
    if args.soak:
        return [Phase("soak", args.edit_every, args.warmup, args.soak)]
    main = Phase("main", args.edit_every, args.warmup, args.duration)
    sweep = [
        Phase(f"every {x:g} s", x, 5.0, args.sweep_duration, rest_s=15.0)
        for x in args.sweep
        if x != args.edit_every
    ]
    main.rest_s = 15.0 if sweep else 0.0
    phases = sorted([main, *sweep], key=lambda p: -p.edit_every_s)  # lowest rate first
    # The first phase also starts the containers (on demand, as concurrency rises): it is measured
    # only once every client has edited at least once, so that its window holds no container start.
    phases[0].warmup_s = max(phases[0].warmup_s, args.warmup, 1.5 * phases[0].edit_every_s)
    return phases


def _drive(
    args: argparse.Namespace,
    dev: CollabDev,
    teams: list[dict[str, Any]],
    phases: list[Phase],
    db_url: str,
    redis_url: str,
    db_name: str,
    db_index: int,
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    procs, pipes = [], []
    for i, part in enumerate(_split(teams, args.client_procs)):
        plan = {
            "api": f"{dev.http_url}/api",
            "database_url": db_url,
            "redis_url": redis_url,
            "workspaces": part,
            "phases": [asdict(p) for p in phases],
            "presence_every_s": args.presence_every,
            "drop_every_s": args.drop_every,
            "seed": args.seed + i,
        }
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_clients_main, args=(child, plan), daemon=True)
        proc.start()
        procs.append(proc)
        pipes.append(parent)
    try:
        connect_s = 0.0
        for p in pipes:
            if not p.poll(600):
                raise RuntimeError("the clients did not connect within 600 s")
            ready = p.recv()
            if "error" in ready:
                raise RuntimeError(f"a client process failed: {ready['error']}")
            connect_s = max(connect_s, ready["connect_s"])
        total_clients = sum(len(t["members"]) for t in teams)
        progress(f"{total_clients} clients live in {connect_s:.0f} s; {len(dev.workers_pids())} workers")
        groups = Groups(dev, [p.pid for p in procs if p.pid is not None])
        go = time.monotonic_ns() + int(1e9)
        for p in pipes:
            p.send(go)
        time.sleep(max(0.0, (go - time.monotonic_ns()) / 1e9))

        windows = []
        at = go
        for ph in phases:
            start = at + int(ph.warmup_s * 1e9)
            end = start + int(ph.duration_s * 1e9)
            windows.append((ph, start, end))
            at = end + int(ph.rest_s * 1e9)

        samples: list[dict[str, Any]] = []
        cpu_marks: dict[str, dict[str, float]] = {}
        profile: dict[str, Any] = {}
        stop = threading.Event()

        def sampler() -> None:
            pending = list(windows)
            next_sample = time.monotonic()
            while not stop.is_set():
                now = time.monotonic_ns()
                for ph, start, end in list(pending):
                    if now >= start and f"{ph.name}:start" not in cpu_marks:
                        cpu_marks[f"{ph.name}:start"] = groups.read()
                        if args.profile and ph.name in ("main", "soak") and not profile:
                            seconds = min(ph.duration_s, 30.0)
                            threading.Thread(
                                target=lambda s=seconds: profile.update(_profile(dev.pid, s, args.out)),
                                daemon=True,
                            ).start()
                    if now >= end:
                        cpu_marks[f"{ph.name}:end"] = groups.read()
                        pending.remove((ph, start, end))
                if time.monotonic() >= next_sample:
                    with contextlib.suppress(Exception):
                        s = _sample(dev, db_url, redis_url, db_name, db_index)
                        s["cpu"] = groups.read()
                        samples.append(s)
                        with open(args.out / "scale-samples.jsonl", "a") as f:  # survives a failed run
                            f.write(json.dumps(s) + "\n")
                    next_sample += args.sample_every
                if not pending and not args.soak:
                    pass
                stop.wait(0.2)

        th = threading.Thread(target=sampler, daemon=True)
        th.start()
        last_report = time.monotonic()
        reports: list[dict[str, Any]] = []
        remaining = list(pipes)
        end_all = windows[-1][2]
        while remaining:
            for p in list(remaining):
                if p.poll(0.5):
                    r = p.recv()
                    if "error" in r:
                        raise RuntimeError(f"a client process failed: {r['error']}")
                    reports.append(r)
                    remaining.remove(p)
            if time.monotonic() - last_report >= 10 and samples:
                s = samples[-1]
                left = max(0, (end_all - time.monotonic_ns()) / 1e9)
                progress(
                    f"  {left:6.0f} s left  load {s['load1']:.1f}  gateway {s['gateway_rss_mb']:.0f} MB"
                    f"  workers {sum(s['workers_rss_mb']):.0f} MB  redis {s['redis_used_mb']:.1f} MB"
                    f"  fds {s['gateway_fds']}+{s['workers_fds']}  tcp {s['gateway_tcp']}"
                )
                last_report = time.monotonic()
        stop.set()
        th.join(10)
    finally:
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.terminate()
    return _report(args, reports, windows, cpu_marks, samples, profile, total_clients, connect_s)


def _profile(pid: int, seconds: float, out: Path) -> dict[str, Any]:
    """py-spy over collab dev and its workers (``--subprocesses``): where the stack's CPU goes."""
    import shutil

    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(exe).exists():
        return {"error": "py-spy is not installed (pip install py-spy)"}
    raw = out / "scale-profile.txt"
    cmd = [exe, "record", "--pid", str(pid), "--subprocesses", "--duration", str(max(1, int(seconds)))]
    cmd += ["--rate", "100", "--nonblocking", "--format", "raw", "--output", str(raw)]
    done = subprocess.run(cmd, capture_output=True, timeout=seconds + 120, check=False)
    if not raw.exists():
        return {"error": done.stderr.decode(errors="replace")[-500:]}
    busy = _busy_profile(raw)  # what the CPU did: waits left out
    return {
        **summarize_profile(busy),
        "raw": str(raw),
        "by_process_busy": _by_process(busy),
        "waiting_share": 1 - _count(busy) / max(_count(raw), 1),
    }


def _count(raw: Path) -> int:
    return sum(
        int(n) for n in (line.rpartition(" ")[2] for line in raw.read_text().splitlines()) if n.isdigit()
    )


# Innermost frames of a process waiting (for the loop, a lock, a socket's answer), not working:
# py-spy samples them as active when the wait is a plain system call.
WAITING = (
    "select (selectors.py",
    "Condition.wait",
    "SemLock.__enter__",
    "_read_from_socket (redis",
    "Connection.wait (psycopg",
    "Queue.get",
    "_recv (multiprocessing",
    "_recv_bytes (multiprocessing",
    "_poll (multiprocessing",
    "wait (threading.py",
)


def _busy_profile(raw: Path) -> Path:
    """The samples of ``raw`` whose innermost frame is not a wait, as another raw file."""
    out = raw.with_name(raw.stem + "-busy.txt")
    kept = []
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if n.isdigit() and not any(w in stack.rsplit(";", 1)[-1] for w in WAITING):
            kept.append(line)
    out.write_text("\n".join(kept) + "\n")
    return out


def _by_process(raw: Path) -> dict[str, float]:
    """Share of samples by process: the gateway ('collab dev') against its workers."""
    counts: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        head = stack.split(";", 2)[:2]
        kind = "workers" if any(f.startswith("process ") and "forkserver" in f for f in head) else "gateway"
        counts[kind] += int(n)
        total += int(n)
    return {k: round(v / max(total, 1), 3) for k, v in counts.items()}


def _report(
    args: argparse.Namespace,
    reports: list[dict[str, Any]],
    windows: list[tuple[Phase, int, int]],
    cpu_marks: dict[str, dict[str, float]],
    samples: list[dict[str, Any]],
    profile: dict[str, Any],
    total_clients: int,
    connect_s: float,
) -> dict[str, Any]:
    def joined(key: str, code: str) -> array.array[Any]:
        out: array.array[Any] = array.array(code)
        for r in reports:
            part: array.array[Any] = array.array(code)
            part.frombytes(r[key])
            out.extend(part)
        return out

    deliveries = (joined("sizes", "H"), joined("sent_at", "q"), joined("latency", "f"))
    edits, acked, presence_at = joined("edits", "q"), joined("acked", "q"), joined("presence_at", "q")
    reconnects = [x for r in reports for x in r["reconnects"]]
    phases_out = []
    for ph, start, end in windows:
        seconds = (end - start) / 1e9
        stats = _phase_stats(deliveries, start, end)
        n_edits = sum(1 for t in edits if start <= t < end)
        a, b = cpu_marks.get(f"{ph.name}:start"), cpu_marks.get(f"{ph.name}:end")
        cpu = {k: (b[k] - a[k]) / seconds for k in a} if a and b else {}
        stack = sum(cpu.get(k, 0.0) for k in ("gateway", "workers", "postgres", "redis"))
        phases_out.append(
            {
                "phase": asdict(ph),
                "edits_per_s": n_edits / seconds,
                "acked_per_s": sum(1 for t in acked if start <= t < end) / seconds,
                "deliveries_per_s": stats["deliveries"] / seconds,
                "presence_deliveries_per_s": sum(1 for t in presence_at if start <= t < end) / seconds,
                **stats,
                "reconnect_total_ms": dist([ms for t, ms in reconnects if start <= t < end]),
                "cpu_cores": {k: round(v, 3) for k, v in cpu.items()},
                "stack_cpu_ms_per_edit": stack / max(n_edits / seconds, 1e-9) * 1000 if cpu else None,
                "cpu_ms_per_edit": {
                    k: round(v / max(n_edits / seconds, 1e-9) * 1000, 3) for k, v in cpu.items()
                },
            }
        )
    out: dict[str, Any] = {
        "clients": total_clients,
        "connect_s": connect_s,
        "phases": phases_out,
        "verify_errors": [r["verify_error"] for r in reports if r.get("verify_error")],
        "lost": sum(r["lost"] for r in reports),
        "clients_behind_seq": sum(r["behind"] for r in reports),
        "deaf": [u for r in reports for u in r["deaf"]],
        "edits_refused": dict(sum((Counter(r["refused"]) for r in reports), Counter())),
        "edits_skipped": sum(r["skipped"] for r in reports),
        "edits_sent": len(edits),
        "edits_acked": len(acked),
        "client_counts": dict(sum((Counter(r["counts"]) for r in reports), Counter())),
        "client_cpu_s": sum(r["cpu_s"] for r in reports),
        # (monotonic s, ms, generation) of the client processes' collections of 20 ms or more
        "client_gc_pauses": sorted((t / 1e9, ms, g) for r in reports for t, ms, g in r.get("gc_pauses", [])),
        "profile": profile or None,
        "samples": samples,
    }
    rates = [(p["edits_per_s"], p["edit_to_peer_ms"]["p95"]) for p in phases_out]
    out["saturation"] = _saturation(rates)
    if args.soak:
        out["soak"] = _soak_summary(deliveries, windows[0][1], windows[0][2], samples)
    return out


def _saturation(rates: list[tuple[float, float]]) -> dict[str, Any]:
    """The edits/s at which p95 crosses SATURATED_P95_MS, interpolated between measured rates."""
    pts = sorted(rates)
    for (r0, p0), (r1, p1) in itertools.pairwise(pts):
        if p0 <= SATURATED_P95_MS < p1:
            at = r0 + (SATURATED_P95_MS - p0) * (r1 - r0) / (p1 - p0)
            return {"edits_per_s": round(at, 1), "between": [round(r0, 1), round(r1, 1)], "points": pts}
    if pts and pts[0][1] > SATURATED_P95_MS:
        return {"edits_per_s": None, "below": round(pts[0][0], 1), "points": pts}
    return {"edits_per_s": None, "above": round(pts[-1][0], 1) if pts else None, "points": pts}


def _soak_summary(
    deliveries: tuple[array.array[int], array.array[int], array.array[float]],
    start: int,
    end: int,
    samples: list[dict[str, Any]],
) -> dict[str, Any]:
    five = int(300e9)
    first = _phase_stats(deliveries, start, min(end, start + five))["edit_to_peer_ms"]
    last = _phase_stats(deliveries, max(start, end - five), end)["edit_to_peer_ms"]
    # p95 per minute, for the plot
    minutes = []
    t = start
    while t < end:
        s = _phase_stats(deliveries, t, min(end, t + int(60e9)))["edit_to_peer_ms"]
        minutes.append(
            {"minute": (t - start) / 60e9, "p50": s["p50"], "p95": s["p95"], "p99": s["p99"], "n": s["n"]}
        )
        t += int(60e9)
    t0 = start / 1e9
    _what_each_minute_had(minutes, samples, t0)
    steady = [s for s in samples if s["t"] >= t0 + 300] or samples
    ts = [s["t"] for s in steady]

    def slope(key: str) -> float:
        return round(_slope_per_hour(ts, [float(s[key]) for s in steady]), 3)

    return {
        "p95_first_5min_ms": first["p95"],
        "p95_last_5min_ms": last["p95"],
        "p95_last_vs_first": last["p95"] / first["p95"] if first["p95"] else None,
        "first_5min": first,
        "last_5min": last,
        "per_minute": minutes,
        "slopes_per_hour_after_5min": {
            "gateway_rss_mb": slope("gateway_rss_mb"),
            "workers_rss_mb_total": round(_slope_per_hour(ts, [sum(s["workers_rss_mb"]) for s in steady]), 3),
            "redis_used_mb": slope("redis_used_mb"),
            "redis_keys": slope("redis_keys"),
            "gateway_fds": slope("gateway_fds"),
            "workers_fds": slope("workers_fds"),
            "gateway_tcp": slope("gateway_tcp"),
            "pg_connections": slope("pg_connections"),
            "redis_clients": slope("redis_clients"),
        },
        "t0_monotonic_s": t0,
    }


def _what_each_minute_had(minutes: list[dict[str, Any]], samples: list[dict[str, Any]], t0: float) -> None:
    """Beside each minute's latency: the cores the machine, the stack and the clients used, the
    cores lost to iowait and steal, and the checkpoints and autovacuum runs that began in it, from
    the samples at the minute's two ends. An excursion with steal or iowait in it was the machine."""
    for m in minutes:
        lo, hi = t0 + 60 * m["minute"], t0 + 60 * (m["minute"] + 1)
        inside = [s for s in samples if lo <= s["t"] <= hi + 5 and "cpu" in s]
        if len(inside) < 2:
            continue
        a, b = inside[0], inside[-1]
        dt = b["t"] - a["t"]
        if dt <= 0:
            continue
        m["cores"] = {k: round((b["cpu"][k] - a["cpu"][k]) / dt, 3) for k in b["cpu"]}
        for key in ("iowait_s", "steal_s"):
            if key in a and key in b:
                m[key.replace("_s", "_cores")] = round((b[key] - a[key]) / dt, 3)
        for key in ("pg_checkpoints", "pg_autovacuums"):
            if key in a and key in b:
                m[key] = b[key] - a[key]


# -- output -------------------------------------------------------------------------------------
def print_report(results: dict[str, Any]) -> None:
    run_ = results["run"]
    lines = [
        f"{run_['clients']} clients ({results['setup']['workspaces']}), {results['setup']['workers']} workers"
    ]
    for p in run_["phases"]:
        lat = p["edit_to_peer_ms"]
        lines.append(
            f"[{p['phase']['name']}] {p['edits_per_s']:.0f} edits/s, {p['deliveries_per_s']:.0f} deliveries/s"
            f" (+{p['presence_deliveries_per_s']:.0f} presence), {p['phase']['duration_s']:.0f} s:"
            f" edit->peer p50 {lat['p50']:.1f} p95 {lat['p95']:.1f} p99 {lat['p99']:.1f} ms (n={lat['n']})"
        )
        for size, d in p["by_workspace_size"].items():
            lines.append(
                f"    workspace of {size}: p50 {d['p50']:.1f}  p95 {d['p95']:.1f}  p99 {d['p99']:.1f} ms"
            )
        if p["cpu_cores"]:
            cores = ", ".join(f"{k} {v:.2f}" for k, v in p["cpu_cores"].items())
            per = ", ".join(f"{k} {v:.2f}" for k, v in p["cpu_ms_per_edit"].items() if k != "machine")
            lines.append(f"    cores: {cores}")
            lines.append(f"    CPU ms per edit: {per}; stack {p['stack_cpu_ms_per_edit']:.2f}")
        rt = p["reconnect_total_ms"]
        if rt["n"]:
            lines.append(f"    reconnect->resynced p50 {rt['p50']:.0f} p95 {rt['p95']:.0f} ms (n={rt['n']})")
    sat = run_["saturation"]
    lines.append(f"saturation (p95 > {SATURATED_P95_MS:.0f} ms): {sat}")
    lines.append(
        f"edits sent {run_['edits_sent']} acked {run_['edits_acked']} refused {run_['edits_refused']}"
        f" skipped {run_['edits_skipped']}; lost {run_['lost']}, behind {run_['clients_behind_seq']},"
        f" deaf {len(run_['deaf'])}; client CPU {run_['client_cpu_s']:.0f} s"
    )
    pauses = [ms for _, ms, _ in run_.get("client_gc_pauses", [])]
    if pauses:
        lines.append(f"client processes' collections >= 20 ms: {len(pauses)}, longest {max(pauses):.0f} ms")
    prof = run_.get("profile") or {}
    if "by_layer" in prof:
        lines.append(f"profile (busy samples) by process {prof.get('by_process_busy')}")
        lines.append(
            "profile by layer " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in prof["by_layer"].items())
        )
    elif "error" in prof:
        lines.append(f"profile: {prof['error']}")
    if "soak" in run_:
        s = run_["soak"]
        lines.append(
            f"soak: p95 first 5 min {s['p95_first_5min_ms']:.1f} ms,"
            f" last 5 min {s['p95_last_5min_ms']:.1f} ms;"
            f" slopes per hour {s['slopes_per_hour_after_5min']}"
        )
        base = s["p95_first_5min_ms"] or 0.0
        for m in s["per_minute"]:
            if base and m["p95"] > 1.5 * base:
                lines.append(
                    f"    minute {m['minute']:.0f}: p95 {m['p95']:.1f} ms; cores {m.get('cores')},"
                    f" iowait {m.get('iowait_cores')}, steal {m.get('steal_cores')},"
                    f" checkpoints {m.get('pg_checkpoints')}, autovacuums {m.get('pg_autovacuums')}"
                )
    lines.append(f"load: {results['machine']['uptime_before']} -> {results['machine']['uptime_after']}")
    print("\n".join(lines))


def plot(results: dict[str, Any], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    run_ = results["run"]
    samples = run_["samples"]
    fig, (lat_ax, mem_ax, fd_ax) = plt.subplots(1, 3, figsize=(18, 4.8))
    if "soak" in run_:
        m = run_["soak"]["per_minute"]
        xs = [x["minute"] for x in m]
        for key in ("p50", "p95", "p99"):
            lat_ax.plot(xs, [x[key] for x in m], label=f"edit->peer {key}")
        lat_ax.set_xlabel("minute of the soak")
        t0 = run_["soak"]["t0_monotonic_s"]
    else:
        xs = [p["edits_per_s"] for p in run_["phases"]]
        for key in ("p50", "p95", "p99"):
            lat_ax.plot(xs, [p["edit_to_peer_ms"][key] for p in run_["phases"]], marker="o", label=key)
        lat_ax.axhline(
            SATURATED_P95_MS, color="red", linestyle="--", linewidth=1, label="saturation: p95 100 ms"
        )
        lat_ax.set_xlabel("edits/s")
        lat_ax.set_yscale("log")
        t0 = samples[0]["t"] if samples else 0.0
    lat_ax.set_ylabel("ms")
    lat_ax.set_title("edit -> peer latency")
    lat_ax.legend(fontsize=8)
    lat_ax.grid(True, alpha=0.3)
    mins = [(s["t"] - t0) / 60 for s in samples]
    mem_ax.plot(mins, [s["gateway_rss_mb"] for s in samples], label="gateway RSS")
    mem_ax.plot(mins, [sum(s["workers_rss_mb"]) for s in samples], label="workers RSS (sum)")
    mem_ax.plot(mins, [s["redis_used_mb"] for s in samples], label="Redis used_memory (server)")
    mem_ax.set_title("memory (MB)")
    mem_ax.set_xlabel("minute")
    mem_ax.legend(fontsize=8)
    mem_ax.grid(True, alpha=0.3)
    for key, label in (
        ("gateway_fds", "gateway fds"),
        ("workers_fds", "workers fds"),
        ("gateway_tcp", "gateway TCP connections"),
        ("pg_connections", "Postgres connections"),
        ("redis_clients", "Redis clients"),
    ):
        fd_ax.plot(mins, [s[key] for s in samples], label=label)
    fd_ax.set_title("file descriptors and connections")
    fd_ax.set_xlabel("minute")
    fd_ax.legend(fontsize=8)
    fd_ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--workspaces", type=int, default=100)
    ap.add_argument("--members", type=int, default=10)
    ap.add_argument("--large", type=int, default=1, help="workspaces of --large-members besides")
    ap.add_argument("--large-members", type=int, default=50)
    ap.add_argument(
        "--workers", type=int, default=16, help="collab dev --workers: containers per function at most"
    )
    ap.add_argument("--client-procs", type=int, default=2)
    ap.add_argument(
        "--edit-every", type=float, default=10.0, help="seconds between a client's edits (main phase)"
    )
    ap.add_argument(
        "--presence-every", type=float, default=30.0, help="seconds between a client's presence.update"
    )
    ap.add_argument(
        "--drop-every", type=float, default=2.0, help="seconds between drops, per client process (0: none)"
    )
    ap.add_argument("--duration", type=float, default=60.0, help="measured seconds of the main phase")
    ap.add_argument("--warmup", type=float, default=10.0)
    ap.add_argument(
        "--sweep",
        type=lambda s: [float(x) for x in s.split(",") if x.strip()],
        default=[20.0, 7.0, 5.0, 4.0],
        help="also run these --edit-every values (seconds) for --sweep-duration each: the saturation point",
    )
    ap.add_argument("--sweep-duration", type=float, default=30.0)
    ap.add_argument("--soak", type=float, default=0.0, help="run the main load this many seconds instead")
    ap.add_argument("--sample-every", type=float, default=10.0)
    ap.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the stack for 30 s of the main phase (it costs a quarter of a core: latencies rise)",
    )
    ap.add_argument("--quick", action="store_true", help="20 x 10 + 1 x 50 clients, 15 s, no sweep")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--seed", type=int, default=15)
    args = ap.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    if args.quick:
        args.workspaces, args.duration, args.warmup, args.sweep = 20, 15.0, 5.0, []
    if args.soak:
        args.sweep = []
    for every in [args.edit_every, *args.sweep]:
        per_min = 60 / every + 60 / max(args.presence_every, 1e-9) * bool(args.presence_every) + 2
        if per_min > 95:
            ap.error(f"edits every {every:g} s: {per_min:.0f} frames/min per client, over the 100/min limit")
    args.out.mkdir(parents=True, exist_ok=True)
    results = run(args)
    name = "scale-soak" if args.soak else ("scale-quick" if args.quick else "scale")
    path = args.out / f"{name}.json"
    path.write_text(json.dumps(results, indent=1))
    png = plot(results, args.out / f"{name}.png")
    print_report(results)
    print(f"\nresults: {path}" + (f", plot: {png}" if png else " (no plot: pip install matplotlib)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
