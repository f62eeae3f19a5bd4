"""Cold start of each handler: module import + init (what Lambda's init phase runs), in a fresh
interpreter each time, side by side with a naive module importing everything at once.

    python -m bench.coldstart [--runs 7]

Prints the median over runs of: init (import of functions/<name>/handler.py, settings read), and
init + first invocation (lazy imports and client connections a first request pays).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

HANDLERS = ["connect", "disconnect", "heartbeat", "message", "sweeper", "api"]


def program(body: str, first: str) -> str:
    """A probe: time (wall and this process's CPU) of ``body`` (the init), then of ``first``."""
    return "\n".join(
        [
            "import json, time",
            "t0 = time.perf_counter(); c0 = time.process_time()",
            body,
            "t1 = time.perf_counter(); c1 = time.process_time()",
            CTX + first,
            "t2 = time.perf_counter()",
            "print(json.dumps({'init_ms': (t1 - t0) * 1e3, 'first_ms': (t2 - t0) * 1e3,"
            " 'init_cpu_ms': (c1 - c0) * 1e3}))",
        ]
    )


def medians(runs: list[dict[str, float]]) -> tuple[float, float, float]:
    return tuple(statistics.median(r[k] for r in runs) for k in ("init_ms", "init_cpu_ms", "first_ms"))  # type: ignore[return-value]


FIRST = {
    "connect": "h.handler({'requestContext': {'connectionId': 'c='},"
    " 'queryStringParameters': {'token': 'x'}}, C())",
    "disconnect": "h.handler({'requestContext': {'connectionId': 'cold='}}, C())",
    "heartbeat": "h.handler({'requestContext': {'connectionId': 'cold='}}, C())",
    "message": "h.handler({'requestContext': {'connectionId': 'cold='}, 'body': '{}'}, C())",
    "sweeper": "h.handler({}, C())",
    "api": "h.handler({'version': '2.0', 'rawPath': '/workspaces', 'routeKey': '$default', 'headers': {},"
    " 'requestContext': {'http': {'method': 'GET', 'path': '/workspaces'}, 'stage': '$default'}}, C())",
}

CTX = (
    "class C:\n    function_name='cold'; memory_limit_in_mb=256; aws_request_id='r';"
    " invoked_function_arn='arn:aws:lambda:us-east-1:1:function:cold'\n"
    "    def get_remaining_time_in_millis(self): return 1000\n"
)


def probe(code: str, env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    from bench.common import fast_sink, services

    with services() as (db, redis_url), fast_sink() as endpoint:
        env = {
            **os.environ,
            "DATABASE_URL": db,
            "REDIS_URL": redis_url,
            "JWT_SECRET": "c" * 32,
            "CONNECTIONS_ENDPOINT": endpoint,
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "y",
            "AWS_DEFAULT_REGION": "us-east-1",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "PYTHONPATH": os.getcwd(),
        }
        rows = []
        for name in HANDLERS:
            code = program(f"import functions.{name}.handler as h", FIRST[name])
            rows.append((name, *medians([probe(code, env) for _ in range(args.runs)])))
        naive = (
            "import boto3, psycopg, redis, pydantic, jwt\n"
            "from aws_lambda_powertools import Logger, Metrics\n"
            f"c = boto3.client('apigatewaymanagementapi', endpoint_url='{endpoint}')"
        )
        rows.append(
            (
                "naive (all imports + boto3 client)",
                *medians([probe(program(naive, "pass"), env) for _ in range(args.runs)]),
            )
        )
    print(f"{'handler':<38} {'init ms':>8} {'init CPU ms':>12} {'init + first call ms':>21}")
    for name, init, cpu, first in rows:
        print(f"{name:<38} {init:>8.0f} {cpu:>12.0f} {first:>21.0f}")


if __name__ == "__main__":
    main()
