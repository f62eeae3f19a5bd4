"""Cold start of each handler: module import + init (what Lambda's init phase runs), in a fresh
interpreter each time, side by side with a naive module importing everything at once.

    python -m bench.coldstart [--runs 7] [--layer 3.13]
    python -m bench.coldstart --aws [--runs 15] [--layer 3.13]

Prints, over runs: init (import of functions/<name>/handler.py, settings read; wall median, CPU min
and median) and init + first invocation (lazy imports and client connections a first request pays).

``--layer 3.13`` runs the probes as Lambda does: under a Python 3.13 interpreter, with nothing on the
path but the pinned layer requirements and the collab package in one ``python/`` folder, compiled
the way ``infra.layers`` compiles the shipped layers (for this machine's platform, so that it runs
here), and never writing bytecode. It adds a column: the init's CPU from the same folder without its
``__pycache__`` (what a layer without bytecode costs: ``/opt`` is read-only in Lambda, so every cold
start would compile every module the layers hold). Without ``--layer``, the probes run in the
development virtualenv.

``--aws`` measures ``$connect`` as a cold container in AWS runs it: the settings hold ARNs, not
secrets (``DB_SECRET_ARN``, ``JWT_SECRET_ARN``, ``REDIS_AUTH_SECRET_ARN``), read from a local HTTPS
stand-in for Secrets Manager (``AWS_ENDPOINT_URL_SECRETS_MANAGER``, a certificate of a local CA
trusted next to the system's roots, as a hashed directory through ``SSL_CERT_DIR`` and as one
bundle), and Redis and Postgres speak only TLS (``rediss://``, ``sslmode=
verify-full``; ``bench.tls_services``). The first invocation is a real ``$connect`` with a valid
ticket: two secrets (the JWT's and Redis's AUTH token: the function's role reads no other), ticket
check, rate limit, single use and registration in Redis. Since contract v1.3 it never reaches
Postgres (membership and the ticket's durable record are the first frame's:
``collab.domain.admission``), so the Postgres over TLS is there for the naive module's sake alone:
the same handler, whatever it imports, does not call it. Next
to it, the naive module: boto3, psycopg, redis, pydantic, PyJWT and Powertools imported at init with
a boto3 Secrets Manager client, the secrets then read with boto3 (``get_secret_value``) by the same
handler. Reported: CPU and wall of init + first invocation, medians over runs.
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


AWS_PROBE = """
import json, os, time
t0 = time.perf_counter(); c0 = time.process_time()
{init}
t1 = time.perf_counter(); c1 = time.process_time()
class C:
    function_name = 'collab-connect'; memory_limit_in_mb = 512; aws_request_id = 'r'
    invoked_function_arn = 'arn:aws:lambda:us-east-1:123456789012:function:collab-connect'
    def get_remaining_time_in_millis(self): return 10000
ticket = os.environ['BENCH_TICKET']
event = {{'requestContext': {{'connectionId': 'Cold' + ticket[-11:] + '=', 'routeKey': '$connect',
          'eventType': 'CONNECT'}}, 'queryStringParameters': {{'token': ticket}}}}
{first}
out = h.handler(event, C())
assert out['statusCode'] == 200, out
t2 = time.perf_counter(); c2 = time.process_time()
print(json.dumps({{'init_ms': (t1 - t0) * 1e3, 'init_cpu_ms': (c1 - c0) * 1e3,
                  'first_ms': (t2 - t0) * 1e3, 'first_cpu_ms': (c2 - c0) * 1e3}}))
"""

OURS_INIT = "import functions.connect.handler as h"
NAIVE_INIT = (
    "import boto3, psycopg, redis, pydantic, jwt\n"
    "from aws_lambda_powertools import Logger, Metrics\n"
    "sm = boto3.client('secretsmanager', endpoint_url=os.environ['AWS_ENDPOINT_URL_SECRETS_MANAGER'])\n"
    "import functions.connect.handler as h"
)
NAIVE_FIRST = (
    "import collab.adapters.secrets_manager as s\n"
    "s.get_secret_value = lambda arn: sm.get_secret_value(SecretId=arn)['SecretString']"
)


def aws_connect(args: argparse.Namespace, python: str, path: str) -> None:
    """``$connect`` cold, as AWS runs it: secrets from (a stand-in of) Secrets Manager, TLS to both."""
    import tempfile

    from bench.tls_endpoint import Endpoint, make_ca
    from bench.tls_fanout import system_bundle, trust
    from bench.tls_services import tls_postgres, tls_redis
    from collab.adapters.postgres.migrate import migrate
    from collab.auth.tokens import issue_ticket
    from collab.config import load_settings

    folder = Path(tempfile.mkdtemp(prefix="collab-coldstart-"))
    folder.chmod(0o755)  # the postgres user runs the cluster below it
    ca = make_ca(folder / "ca")
    jwt_secret = "j" * 48
    runs = args.runs
    with tls_redis(folder, ca) as (redis_url, redis_password), tls_postgres(folder / "pg", ca) as pg_port:
        admin = (
            f"postgresql://postgres@127.0.0.1:{pg_port}/postgres?sslmode=verify-full&sslrootcert={ca.ca_file}"
        )
        import psycopg

        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE collab")
        dsn = admin.replace("/postgres?", "/collab?")
        migrate(dsn)
        users = [f"cold-{i}" for i in range(2 * runs + 2)]  # one per $connect: 30 per minute per user
        with psycopg.connect(dsn, autocommit=True) as conn:
            for u in users:
                conn.execute("INSERT INTO users (id, display_name) VALUES (%s, %s)", (u, u))
            wid = str(
                conn.execute(
                    "INSERT INTO workspaces (name, created_by) VALUES ('cold', %s) RETURNING id", (users[0],)
                ).fetchone()[0]
            )
            for i, u in enumerate(users[:50]):
                role = "owner" if i == 0 else "member"
                conn.execute(
                    "INSERT INTO workspace_members (workspace_id, user_id, role) VALUES (%s, %s, %s)",
                    (wid, u, role),
                )
        values = {
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:db": json.dumps(
                {"username": "postgres", "password": "unused", "port": pg_port, "dbname": "collab"}
            ),
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt": jwt_secret,
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:redis": json.dumps(
                {"password": redis_password}
            ),
        }
        fetched: list[str] = []

        def respond(head: bytes, body: bytes) -> bytes:
            arn = json.loads(body)["SecretId"]
            fetched.append(arn)
            payload = json.dumps(
                {"ARN": arn, "Name": arn.rsplit(":", 1)[1], "SecretString": values[arn]}
            ).encode()
            return (
                b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload)
            )

        secrets_manager = Endpoint(ca, respond=respond)
        bundle = folder / "bundle.pem"
        bundle.write_bytes(system_bundle() + ca.ca_file.read_bytes())
        trust(folder, ca.ca_file, "dir")
        settings = load_settings({"REDIS_URL": "redis://x", "DATABASE_URL": dsn, "JWT_SECRET": jwt_secret})
        env = {
            **{
                k: v
                for k, v in os.environ.items()
                if k not in ("DATABASE_URL", "JWT_SECRET", "SSL_CERT_FILE")
            },
            "REDIS_URL": redis_url,
            "REDIS_AUTH_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:redis",
            "DB_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:db",
            "DB_HOST": "127.0.0.1",
            "DB_NAME": "collab",
            "JWT_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt",
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": secrets_manager.url,
            # The system's roots plus the local one, as Lambda has them (~140): a hashed directory
            # (SSL_CERT_DIR: Python's and redis-py's contexts), the same as one bundle for libpq
            # (DB_SSLROOTCERT, what system_ca_bundle() names in AWS) and botocore (AWS_CA_BUNDLE:
            # certifi's bundle otherwise).
            "SSL_CERT_DIR": str(folder / "certs"),
            "DB_SSLROOTCERT": str(bundle),
            "AWS_CA_BUNDLE": str(bundle),
            "AWS_ACCESS_KEY_ID": "AKIDCOLD",
            "AWS_SECRET_ACCESS_KEY": "cold",
            "AWS_SESSION_TOKEN": "token",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            "PYTHONPATH": path,
        }
        if args.layer:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
            env["PYTHONNOUSERSITE"] = "1"
        results: dict[str, list[dict[str, float]]] = {"connect": [], "naive": []}
        user = iter(users[:50])
        try:
            for _ in range(runs):  # interleaved, so that the machine's load falls on both alike
                for name, init, first in (("connect", OURS_INIT, ""), ("naive", NAIVE_INIT, NAIVE_FIRST)):
                    ticket = issue_ticket(settings, next(user), wid)[0]
                    code = AWS_PROBE.format(init=init, first=first)
                    if os.environ.get("BENCH_DUMP"):
                        Path(os.environ["BENCH_DUMP"]).write_text(
                            json.dumps({"code": code, "env": {**env, "BENCH_TICKET": ticket}})
                        )
                        input("probe dumped; press enter")
                    results[name].append(probe(code, {**env, "BENCH_TICKET": ticket}, python))
        finally:
            secrets_manager.close()
        assert len(fetched) == 2 * 2 * runs, f"2 secrets per cold $connect, got {len(fetched)}"
    shutil.rmtree(folder, ignore_errors=True)
    where = f"Python {args.layer}, layer-shaped" if args.layer else f"Python {sys.version.split()[0]}, venv"
    print(f"cold $connect as AWS runs it, {runs} fresh interpreters each ({where}):")
    print("secrets from an HTTPS Secrets Manager stand-in, Redis over TLS, Postgres over TLS (verify-full)")
    print(f"{'module':<10} {'init CPU':>9} {'init + first CPU':>17} {'min':>6} {'init + first wall':>18}")
    med = statistics.median
    for name, rows in results.items():
        first_cpu = [r["first_cpu_ms"] for r in rows]
        print(
            f"{name:<10} {med(r['init_cpu_ms'] for r in rows):>9.0f} {med(first_cpu):>17.0f}"
            f" {min(first_cpu):>6.0f} {med(r['first_ms'] for r in rows):>18.0f}"
        )
    ours = med(r["first_cpu_ms"] for r in results["connect"])
    naive = med(r["first_cpu_ms"] for r in results["naive"])
    print(f"connect / naive, init + first CPU: {ours / naive:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--layer", metavar="X.Y", help="run as Lambda does, from layer-shaped bytecode")
    ap.add_argument("--aws", action="store_true", help="$connect with Secrets Manager and TLS, vs naive")
    args = ap.parse_args()
    if args.aws:
        python, path = sys.executable, f"{os.getcwd()}"
        if args.layer:
            python, site, _ = layer_site(args.layer)
            path = f"{site}{os.pathsep}{ROOT}"
        aws_connect(args, python, path)
        return
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
