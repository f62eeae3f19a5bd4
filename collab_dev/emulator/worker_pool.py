"""Lambda's containers on one machine: the project's functions run in worker processes.

In AWS each invocation runs in a container of its function, one invocation at a time, and a busy
function gets more containers side by side; none of them shares a process with API Gateway. Under
one Python process the gateway's event loop and every handler took turns on one GIL, so a load of
many workspaces measured that process, not the handlers, Postgres and Redis. Here:

* ``processes`` worker processes (``spawn``: fresh interpreters, nothing inherited from the
  gateway's loop) each run one invocation at a time, as a container does. A worker imports a
  function's ``functions/<name>/handler.py`` on its first invocation of that function (its cold
  start: module-level clients are created then, once per worker) and reuses it afterwards (warm).
  A worker is therefore a warm container of every function it has run.
* ``concurrency`` caps the invocations of one function in flight at once (Lambda's reserved
  concurrency; the rest wait their turn rather than being throttled). Without a cap a function may
  use every worker.
* Each invocation signs its Management API calls as its function (``permissions.call_as``), so the
  gateway's 403 for a role without ``execute-api:ManageConnections`` holds across processes.
* A worker that dies (a crash, an ``os._exit``) fails the invocations it was running, as a
  container that dies does; the pool is replaced and the next invocation starts a fresh worker.

:func:`WorkerPool.invoke` is the one entry point: ``await pool.invoke("message", event)`` returns what
the handler returned, or raises what it raised (with the worker's traceback as its cause).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

log = logging.getLogger("collab_dev.emulator")


class WorkerPool:
    """``processes`` spawned worker processes running the project's functions by name."""

    def __init__(self, processes: int, root: Path, concurrency: Mapping[str, int] | None = None) -> None:
        if processes < 1:
            raise ValueError("a worker pool needs at least one process")
        bad = {name: n for name, n in (concurrency or {}).items() if n < 1}
        if bad:
            raise ValueError(f"concurrency must be at least 1: {bad}")
        self.processes = processes
        self.root = root
        self.concurrency = dict(concurrency or {})
        self._executor: ProcessPoolExecutor | None = None
        self._limits: dict[str, asyncio.Semaphore] = {}

    def start(self) -> None:
        """Create the pool; workers start on demand (the first invocations are cold starts). The
        environment is taken now: the gateway exports its endpoint before starting the pool."""
        self._executor = ProcessPoolExecutor(
            self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
            initargs=(str(self.root), dict(os.environ)),
        )

    def pids(self) -> list[int]:
        """The worker processes running now (for memory and CPU accounting)."""
        processes = getattr(self._executor, "_processes", None) or {}
        return [p.pid for p in list(processes.values()) if p.pid is not None]

    async def invoke(self, function: str, event: dict[str, Any]) -> Any:
        """Run ``functions/<function>/handler.py:handler`` on ``event`` in a worker; its result."""
        limit = self._limit(function)
        if limit is None:
            return await self._run(function, event)
        async with limit:
            return await self._run(function, event)

    def _limit(self, function: str) -> asyncio.Semaphore | None:
        cap = self.concurrency.get(function)
        if cap is None:
            return None
        sem = self._limits.get(function)
        if sem is None:
            sem = self._limits[function] = asyncio.Semaphore(cap)
        return sem

    async def _run(self, function: str, event: dict[str, Any]) -> Any:
        executor = self._executor
        if executor is None:
            raise RuntimeError("the worker pool is not started")
        try:
            future = executor.submit(_invoke, function, event)
            return await asyncio.wrap_future(future)
        except BrokenProcessPool:
            # A worker died: every invocation it held fails; a new pool serves the next ones.
            if self._executor is executor:
                log.error("a worker process died; starting a new pool")
                executor.shutdown(wait=False, cancel_futures=True)
                self.start()
            raise

    def shutdown(self) -> None:
        """Stop the workers (waiting for the invocations in flight)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


# -- inside a worker process ------------------------------------------------------------------
_root = Path()
_loaded: dict[str, Any] = {}


def _worker_init(root: str, env: dict[str, str]) -> None:
    global _root
    # Ctrl-C in `collab dev` reaches the whole process group; the gateway stops the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.clear()
    os.environ.update(env)
    _root = Path(root)
    if root not in sys.path:
        sys.path.insert(0, root)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if os.environ.get("POWERTOOLS_METRICS_DISABLED", "").lower() == "true":
        # Powertools prints a metric set (EMF lines for CloudWatch) once it holds 100 values, even
        # with metrics disabled: noise on the terminal of `collab dev`.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the worker


def _invoke(function: str, event: dict[str, Any]) -> Any:
    from collab_dev import permissions
    from collab_dev.emulator.lambda_events import LambdaContext
    from collab_dev.emulator.lambda_loader import LambdaFunction

    fn = _loaded.get(function)
    first = fn is None
    if fn is None:
        fn = _loaded[function] = LambdaFunction(function, _root)
    try:
        return permissions.call_as(function, fn, event, LambdaContext(fn.function_name))
    finally:
        if first:
            # The function's modules and clients live as long as the worker: out of the collector's
            # reach, full collections stop walking them (pauses of tens of ms otherwise).
            gc.collect()
            gc.freeze()
