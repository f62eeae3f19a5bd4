"""Warm ``task.update`` through the real ``$default`` handler, fanned out to N connections.

Prints handler time p50/p95/p99, CPU per message and per recipient, and the Postgres transactions
and Redis round trips per message. The Management API is a local keep-alive sink in another
process, so the numbers are the handler's own cost (API Gateway's network latency excluded).

    python -m bench.task_update [--recipients 50] [--messages 500]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import time
import uuid

from bench.common import fast_sink, services, summary


class Ctx:
    function_name = "bench"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


def run(recipients: int, messages: int, actors: int = 10) -> dict[str, object]:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    with services() as (db_url, redis_url), fast_sink() as endpoint:
        from collab import runtime
        from collab.adapters.redis.store import ConnInfo
        from collab.config import load_settings

        settings = load_settings(
            {
                "DATABASE_URL": db_url,
                "REDIS_URL": redis_url,
                "JWT_SECRET": "b" * 32,
                "CONNECTIONS_ENDPOINT": endpoint,
            }
        )
        rt = runtime.Runtime(settings)
        runtime.install(rt)
        rt.store.r.flushdb()
        members = [f"user{i:02d}" for i in range(min(50, max(recipients, actors)))]

        def setup(cur):  # type: ignore[no-untyped-def]
            cur.executemany("INSERT INTO users (id, display_name) VALUES (%s, %s)", [(u, u) for u in members])
            wid = cur.execute(
                "INSERT INTO workspaces (name, created_by) VALUES ('bench', %s) RETURNING id", (members[0],)
            ).fetchone()["id"]
            cur.executemany(
                "INSERT INTO workspace_members (workspace_id, user_id, role) VALUES (%s, %s, %s)",
                [(wid, u, "owner" if i == 0 else "member") for i, u in enumerate(members)],
            )
            return str(wid)

        wid = rt.db.run(setup)
        now = rt.clock.now_ms()
        # One connection per member, plus extra tabs, so that each message reaches `recipients` peers.
        from collab.domain import presence

        conns = []
        for i in range(recipients + 1):
            uid = members[i % len(members)]
            cid = f"bench{i:04d}="
            info = ConnInfo(cid, wid, uid, uid, now)
            rt.store.register(info, now)
            presence.join(rt, info)  # a connection is a fan-out target from its first sync on
            conns.append((cid, uid))
        actor_conns = conns[:actors]
        from collab.domain import tasks
        from collab.protocol.client_frames import TaskDraft

        tid = tasks.create(rt.db, members[0], TaskDraft(title="bench"), workspace_id=wid).task["id"]
        from functions.message.handler import handler

        with open(os.path.join(os.path.dirname(__file__), "events.json")) as f:
            template = json.load(f)

        def event(cid: str, i: int) -> dict[str, object]:
            ev = json.loads(json.dumps(template))
            ev["requestContext"]["connectionId"] = cid
            ev["body"] = json.dumps(
                {
                    "action": "task.update",
                    "request_id": str(uuid.uuid4()),
                    "task_id": tid,
                    "changes": {"title": f"title {i}", "priority": "high" if i % 2 else "low"},
                }
            )
            return ev

        sink = io.StringIO()
        import logging

        for h in logging.getLogger("collab").handlers:  # log lines are formatted, then discarded
            h.setStream(open(os.devnull, "w"))  # noqa: SIM115
        gw = rt.gateway_for(None)
        # warm-up: clients, pools, prepared statements, connection cache
        with contextlib.redirect_stdout(sink):
            for i in range(len(actor_conns) * 3):
                handler(event(actor_conns[i % actors][0], i), Ctx())
        events = [event(actor_conns[i % actors][0], i) for i in range(messages)]
        # Count what goes over the wire, not calls of our own wrappers: every write of a command
        # (or a whole pipeline) to a Redis socket is one round trip.
        import redis.connection

        sends = [0]
        real_send = redis.connection.AbstractConnection.send_packed_command

        def counting_send(self, command, check_health=True):  # type: ignore[no-untyped-def]
            sends[0] += 1
            return real_send(self, command, check_health)

        redis.connection.AbstractConnection.send_packed_command = counting_send  # type: ignore[method-assign]
        tx0, rtt0, posts0 = rt.db.transactions, sends[0], gw.posts
        wall: list[float] = []
        cpu0 = time.process_time()
        with contextlib.redirect_stdout(sink):
            for ev in events:
                t0 = time.perf_counter()
                out = handler(ev, Ctx())
                wall.append((time.perf_counter() - t0) * 1000)
                assert json.loads(out["body"])["data"]["ok"] is True, out
        cpu = time.process_time() - cpu0
        redis.connection.AbstractConnection.send_packed_command = real_send  # type: ignore[method-assign]
        posts = gw.posts - posts0
        runtime.install(None)
        return {
            "recipients": recipients,
            "messages": messages,
            "handler_ms": summary(wall),
            "cpu_ms_per_message": cpu / messages * 1000,
            "cpu_us_per_recipient": cpu / max(posts, 1) * 1e6,
            "posts_per_message": posts / messages,
            "pg_transactions_per_message": (rt.db.transactions - tx0) / messages,
            "redis_round_trips_per_message": (sends[0] - rtt0) / messages,
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipients", type=int, nargs="+", default=[10, 50])
    ap.add_argument("--messages", type=int, default=500)
    ap.add_argument("--json", action="store_true", help="print JSON only")
    args = ap.parse_args()
    results = [run(n, args.messages) for n in args.recipients]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(
        f"{'fan-out':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'CPU ms/msg':>11} {'CPU us/recip':>13}"
        f" {'PG tx/msg':>10} {'Redis RT/msg':>13}"
    )
    for r in results:
        h = r["handler_ms"]
        assert isinstance(h, dict)
        print(
            f"{r['recipients']:>8} {h['p50']:>8.2f} {h['p95']:>8.2f} {h['p99']:>8.2f}"
            f" {r['cpu_ms_per_message']:>11.2f} {r['cpu_us_per_recipient']:>13.0f}"
            f" {r['pg_transactions_per_message']:>10.2f} {r['redis_round_trips_per_message']:>13.2f}"
        )


if __name__ == "__main__":
    main()
