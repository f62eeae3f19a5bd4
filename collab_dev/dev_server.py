"""``collab dev``: the whole system on one machine, one port (contract sections 5 and 6).

Order of start-up: Postgres and Redis (the machine's, from ``DATABASE_URL`` / ``REDIS_URL``, or
embedded ones under ``.collab/`` that keep their data between runs), the schema, the JWT secret
(``JWT_SECRET`` or one generated once into ``.collab/jwt_secret``), the gateway, then the demo
workspace, seeded through the HTTP API handler and retried until that handler answers. SIGINT or
SIGTERM closes every connection with 1001 (each gets its ``$disconnect``) and stops the embedded
services.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import secrets
import signal
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from collab_dev import gc_pauses

if TYPE_CHECKING:
    from collab_dev.emulator.local_gateway import LocalGateway

HOME = Path(".collab")
SEED_RETRY_S = 5.0  # the HTTP API may still be being written: try again this often

log = logging.getLogger("collab_dev.emulator")


def _jwt_secret(home: Path) -> None:
    """``JWT_SECRET`` from the environment, else a secret generated once and kept, so that tokens
    (and the printed links) survive a restart."""
    if os.environ.get("JWT_SECRET"):
        return
    path = home / "jwt_secret"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48), encoding="utf-8")
        path.chmod(0o600)
    os.environ["JWT_SECRET"] = path.read_text(encoding="utf-8").strip()


class _Services:
    """The embedded Postgres and Redis this run started (none when both URLs were given)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.pg: Any = None
        self.redis: Any = None

    def start(self) -> None:
        from collab_dev import embedded

        if not os.environ.get("DATABASE_URL"):
            url, self.pg = embedded.start_postgres(self.home)
            os.environ["DATABASE_URL"] = url
        if not os.environ.get("REDIS_URL"):
            url, self.redis = embedded.start_redis(self.home)
            os.environ["REDIS_URL"] = url

    def stop(self) -> None:
        if self.redis is not None:
            with contextlib.suppress(Exception):  # the server goes away mid-command: expected
                self.redis.shutdown(save=True)
        if self.pg is not None:
            # collab_dev.embedded starts Postgres to outlive its process (fast test restarts); a dev
            # stack stops what it started.
            self.pg.cleanup_mode = "stop"
            with contextlib.suppress(Exception):
                self.pg.cleanup()


def serve(
    host: str = "127.0.0.1", port: int = 8080, workers: int = 0, concurrency: dict[str, int] | None = None
) -> int:
    """Run until SIGINT/SIGTERM. ``workers``: worker processes for the functions (0: threads in
    this process); ``concurrency``: per-function caps on invocations in flight."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("pgserver").setLevel(logging.WARNING)  # it logs every pg_ctl call at INFO
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")  # pgserver's lock file falls back to /tmp
    # Handler logs and metrics are JSON lines meant for CloudWatch; locally they drown the console.
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    services = _Services(HOME)
    try:
        services.start()
        from collab.adapters.postgres.migrate import migrate

        applied = migrate(os.environ["DATABASE_URL"])
        print(f"postgres: ready ({'migrated ' + ', '.join(applied) if applied else 'schema up to date'})")
        print(f"redis:    ready ({'embedded' if services.redis is not None else os.environ['REDIS_URL']})")
        _jwt_secret(HOME)
        queue_server = _webhook_queue()
        try:
            return asyncio.run(_run(host, port, workers, concurrency or {}))
        finally:
            if queue_server is not None:
                queue_server.stop()
    finally:
        services.stop()


def _webhook_queue() -> Any:
    """Webhooks go through SQS as in AWS: moto's SQS in server mode on loopback (the FIFO queue and
    its dead-letter queue), read by :class:`collab_dev.webhook_poller.Poller`. Receivers on loopback
    are allowed here (``WEBHOOK_ALLOW_LOOPBACK``); every other SSRF rule holds. Returns the server."""
    try:
        from collab_dev.webhook_poller import start_local_queue
    except ImportError:  # pragma: no cover - moto is in the dev extra
        return None
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server, url = start_local_queue()
    host, port = server.get_host_and_port()
    os.environ["WEBHOOK_QUEUE_URL"] = url
    os.environ["SQS_ENDPOINT_URL"] = f"http://{host}:{port}"
    os.environ.setdefault("WEBHOOK_ALLOW_LOOPBACK", "1")
    print(f"webhooks: SQS FIFO queue (moto) at {url}")
    return server


async def _run(host: str, port: int, workers: int, concurrency: dict[str, int]) -> int:
    from collab_dev.emulator import lambda_events
    from collab_dev.emulator.local_gateway import LocalGateway

    gateway = LocalGateway(host=host, port=port, processes=workers, concurrency=concurrency)
    try:
        await gateway.start()
    except OSError as exc:
        print(
            f"collab dev: cannot listen on {host}:{port} ({exc.strerror}); try --port {port + 1}",
            file=sys.stderr,
        )
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"\nCollab is running at {gateway.http_url}/")
    print(f"  WebSocket API   {gateway.ws_url}")
    print(f"  HTTP API        {gateway.http_url}/api/")
    print(f"  Management API  {gateway.http_url}/@connections/{{connection_id}}")
    where = f"{workers} worker processes" if workers else "threads of the gateway's process"
    print(f"  functions in    {where}")
    poller = _webhook_poller()
    if gateway.sweeper is not None:
        # Connections left in Redis by an earlier run are swept now rather than in a minute.
        with contextlib.suppress(Exception):
            await gateway.invoke(gateway.sweeper, lambda_events.scheduled())
    seeding = asyncio.create_task(_seed_until_ready(gateway))
    # What is loaded now lives as long as the gateway: out of the collector's reach, full
    # collections stop walking it (gen-2 pauses of 57-280 ms were measured without, docs/performance.md).
    gc.collect()
    gc.freeze()
    gc_pauses.watch(100, _report_long_collection)
    await stop.wait()
    print("\nstopping: closing connections...", flush=True)
    seeding.cancel()
    if poller is not None:
        poller.stop()
    await gateway.stop()
    return 0


def _report_long_collection(ms: float, generation: int) -> None:
    """A collection held the gateway's loop 100 ms or more: every socket waited that long, and a
    latency spike in a benchmark or a soak is then the gateway's."""
    print(f"gateway: a garbage collection (generation {generation}) held the loop {ms:.0f} ms", flush=True)


def _webhook_poller() -> Any:
    """Lambda's SQS event source for ``functions/webhooks``, plus its minute schedule."""
    if not os.environ.get("WEBHOOK_QUEUE_URL"):
        return None
    from collab.adapters.sqs.queue import WebhookQueue
    from collab_dev.emulator.lambda_events import LambdaContext
    from collab_dev.emulator.lambda_loader import LambdaFunction
    from collab_dev.webhook_poller import Poller

    function = LambdaFunction("webhooks")
    queue = WebhookQueue(os.environ["WEBHOOK_QUEUE_URL"], endpoint_url=os.environ.get("SQS_ENDPOINT_URL"))
    poller = Poller(queue, lambda event: function(event, LambdaContext(function.function_name)))
    poller.start()
    return poller


async def _seed_until_ready(gateway: LocalGateway) -> None:
    from collab.config import load_settings
    from collab_dev.seed import SeedError, seed

    settings = load_settings()
    last = ""
    while True:
        try:
            demo = await seed(gateway, settings)
        except SeedError as exc:
            if str(exc) != last:
                print(f"demo workspace: not yet ({exc}); retrying every {SEED_RETRY_S:.0f} s", flush=True)
                last = str(exc)
            await asyncio.sleep(SEED_RETRY_S)
            continue
        state = "created" if demo.created else "ready"
        print(f"\nDemo workspace {demo.workspace_id} {state}. Open it as two users, in two windows:")
        for user, link in demo.links(gateway.http_url):
            print(f"  {user.name:<13} {link}")
        print("Ctrl-C stops everything.\n", flush=True)
        return
