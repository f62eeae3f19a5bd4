"""Cold start of each handler: module import + init (what Lambda's init phase runs), in a fresh
interpreter each time, side by side with a naive module importing everything at once.

    python -m bench.coldstart [--runs 7] [--layer 3.13]

Prints, over runs: init (import of functions/<name>/handler.py, settings read; wall median, CPU min
and median) and init + first invocation (lazy imports and client connections a first request pays).

``--layer 3.13`` runs the probes as Lambda does: under a Python 3.13 interpreter, with nothing on the
path but the pinned layer requirements and the collab package in one ``python/`` folder, compiled
the way ``infra.layers`` compiles the shipped layers (for this machine's platform, so that it runs
here), and never writing bytecode. It adds a column: the init's CPU from the same folder without its
``__pycache__`` (what a layer without bytecode costs: ``/opt`` is read-only in Lambda, so every cold
start would compile every module the layers hold). Without ``--layer``, the probes run in the
development virtualenv.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

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


def stats(runs: list[dict[str, float]]) -> tuple[float, float, float, float]:
    """Wall median, CPU min, CPU median of the init, and wall median of init + first call."""
    cpu = [r["init_cpu_ms"] for r in runs]
    return (
        statistics.median(r["init_ms"] for r in runs),
        min(cpu),
        statistics.median(cpu),
        statistics.median(r["first_ms"] for r in runs),
    )


def layer_site(version: str) -> tuple[str, Path, Path]:
    """(interpreter, python/ folder shaped like the shipped layers for this machine's platform, the
    same folder without bytecode)."""
    from infra import layers

    if layers.bytecode_python(version) is None:
        raise SystemExit(f"--layer {version}: no Python {version} interpreter found (see infra/layers.py)")
    python, deps = layers.runtime_site(version)  # boto3 too, for the naive module: Lambda carries it
    base = deps.parent / f"bench-layer-{deps.name}"
    compiled = base / "deps"
    if not (compiled / ".complete").exists():
        shutil.rmtree(compiled, ignore_errors=True)
        shutil.copytree(deps, compiled)
        layers._compile(compiled, python, layers._run)
    site = base / "python"  # the requirements and this checkout's collab package, fresh each run
    shutil.rmtree(site, ignore_errors=True)
    shutil.copytree(compiled, site, ignore=shutil.ignore_patterns(".complete"))
    for path in layers._package_files(layers.COLLAB_SOURCE):
        out = site / "collab" / path.relative_to(layers.COLLAB_SOURCE)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, out)
    source = base / "source"
    shutil.rmtree(source, ignore_errors=True)
    shutil.copytree(site, source, ignore=shutil.ignore_patterns("__pycache__"))
    layers._compile(site / "collab", python, layers._run)
    return python, site, source


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


def probe(code: str, env: dict[str, str], python: str = sys.executable) -> dict[str, float]:
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--layer", metavar="X.Y", help="run as Lambda does, from layer-shaped bytecode")
    args = ap.parse_args()
    from bench.common import fast_sink, services

    python, path, source_path = sys.executable, os.getcwd(), ""
    if args.layer:
        python, site, source = layer_site(args.layer)
        path, source_path = f"{site}{os.pathsep}{ROOT}", f"{source}{os.pathsep}{ROOT}"

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
            "PYTHONPATH": path,
        }
        if args.layer:
            env["PYTHONDONTWRITEBYTECODE"] = "1"  # /opt is read-only in Lambda
            env["PYTHONNOUSERSITE"] = "1"
        compiling_env = {**env, "PYTHONPATH": source_path}
        naive = (
            "import boto3, psycopg, redis, pydantic, jwt\n"
            "from aws_lambda_powertools import Logger, Metrics\n"
            f"c = boto3.client('apigatewaymanagementapi', endpoint_url='{endpoint}')"
        )
        cases = [(name, f"import functions.{name}.handler as h", FIRST[name]) for name in HANDLERS]
        cases.append(("naive (all imports + boto3 client)", naive, "pass"))
        rows = []
        for name, body, first in cases:
            code = program(body, first)
            timed = stats([probe(code, env, python) for _ in range(args.runs)])
            compiling = (
                statistics.median(probe(code, compiling_env, python)["init_cpu_ms"] for _ in range(args.runs))
                if args.layer
                else float("nan")
            )
            rows.append((name, *timed, compiling))
    where = f"Python {args.layer}, layer-shaped" if args.layer else f"Python {sys.version.split()[0]}, venv"
    print(f"cold start, {args.runs} fresh interpreters each ({where})")
    print(
        f"{'handler':<38} {'init ms':>8} {'init CPU min':>13} {'init CPU med':>13}"
        f" {'init + first ms':>16} {'init CPU, no bytecode':>22}"
    )
    for name, init, cpu_min, cpu_med, first, compiling in rows:
        print(f"{name:<38} {init:>8.0f} {cpu_min:>13.0f} {cpu_med:>13.0f} {first:>16.0f} {compiling:>22.0f}")


if __name__ == "__main__":
    main()
