"""Lambda's containers on one machine: the project's functions run in worker processes.

In AWS each invocation runs in a container of its function, one invocation at a time, and a busy
function gets more containers side by side; none of them shares a process with API Gateway or with
another function. Under one Python process the gateway's event loop and every handler took turns on
one GIL, so a load of many workspaces measured that process, not the handlers, Postgres and Redis.
Here:

* Each function has containers of its own: worker processes (forked by a fork server, a clean
  process holding only :data:`PRELOAD`, nothing of the gateway's loop) started on demand, up to
  ``processes`` per function (``concurrency`` sets it per function: Lambda's reserved
  concurrency). Beyond that an invocation waits for one of the function's containers (Lambda would
  throttle). Another function's burst
  never delays it: a heartbeat does not queue behind a thousand edits, as in AWS (with one shared
  pool, heartbeats waited more than the client's 10 s under load and every client reconnected).
* A container imports ``functions/<name>/handler.py`` on its first invocation (its cold start:
  module-level clients are created then, once per container) and reuses it afterwards (warm); it
  runs one invocation at a time.
* Each invocation signs its Management API calls as its function (``permissions.call_as``), so the
  gateway's 403 for a role without ``execute-api:ManageConnections`` holds across processes.
* A container that dies (a crash, an ``os._exit``) fails the invocation it was running with
  :class:`WorkerDied`, as in Lambda; the function's next invocation starts a fresh one.
* Each container has a pipe of its own, read by the gateway's event loop: no feeder or result
  thread, no lock shared between workers (``concurrent.futures.ProcessPoolExecutor`` spent ~12% of a
  worker's busy time and more of the gateway's on its queues' locks and threads).

:func:`WorkerPool.invoke` is the one entry point: ``await pool.invoke("message", event)`` returns what
the handler returned, or raises what it raised (with the worker's traceback as its cause).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import logging
import multiprocessing
import os
import signal
import sys
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("collab_dev.emulator")


# Imported once by the fork server, shared by every container forked from it: a container's cold
# start is then its function's own import and clients (~0.2 s), not an interpreter's start-up and
# these libraries (1-3 s of CPU each on a loaded 2-core machine, where a burst of connects started
# dozens of containers at once). Nothing of the project's runtime is imported here: clients are still
# created once per container, on its first invocation.
PRELOAD = ["psycopg", "redis", "pydantic", "jwt", "aws_lambda_powertools", "collab_dev.emulator.worker_pool"]


def _context() -> Any:
    """A fork server (a clean process started once, without the gateway's loop or threads) that
    forks the containers."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


class WorkerDied(RuntimeError):
    """The worker process running an invocation exited before answering."""


class RemoteTraceback(Exception):
    """The worker's traceback, attached as the cause of an error raised by a handler."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(eq=False)
class _Worker:
    function: str
    process: Any
    conn: Any
    future: asyncio.Future[Any] | None = None


class WorkerPool:
    """Containers (worker processes) of the project's functions, at most ``processes`` per function
    unless ``concurrency`` names another number for it."""

    def __init__(self, processes: int, root: Path, concurrency: Mapping[str, int] | None = None) -> None:
        if processes < 1:
            raise ValueError("a worker pool needs at least one process")
        bad = {name: n for name, n in (concurrency or {}).items() if n < 1}
        if bad:
            raise ValueError(f"concurrency must be at least 1: {bad}")
        self.processes = processes
        self.root = root
        self.concurrency = dict(concurrency or {})
        self._env: dict[str, str] | None = None
        self._ctx = _context()
        self._workers: list[_Worker] = []
        self._idle: dict[str, list[_Worker]] = collections.defaultdict(list)
        self._waiting: dict[str, collections.deque[asyncio.Future[_Worker]]] = collections.defaultdict(
            collections.deque
        )
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Take the environment the workers will run with (the gateway exports its endpoint first);
        containers start on demand, so each function's first invocations are cold starts."""
        self._env = dict(os.environ)

    def pids(self) -> list[int]:
        """The worker processes running now (for memory and CPU accounting)."""
        return [w.process.pid for w in self._workers if w.process.pid is not None]

    def containers(self) -> dict[str, int]:
        """How many containers each function has now."""
        out: dict[str, int] = collections.Counter(w.function for w in self._workers)
        return dict(out)

    def cap(self, function: str) -> int:
        return self.concurrency.get(function, self.processes)

    async def invoke(self, function: str, event: dict[str, Any]) -> Any:
        """Run ``functions/<function>/handler.py:handler`` on ``event`` in one of the function's
        containers; its result."""
        worker = await self._acquire(function)
        future = asyncio.get_running_loop().create_future()
        worker.future = future
        try:
            worker.conn.send((function, event))
        except OSError:
            self._lost(worker)  # fails the future with WorkerDied
        return await future

    async def _acquire(self, function: str) -> _Worker:
        if self._env is None:
            raise RuntimeError("the worker pool is not started")
        idle = self._idle[function]
        if idle:
            return idle.pop()
        if sum(1 for w in self._workers if w.function == function) < self.cap(function):
            return self._spawn(function)
        waiter: asyncio.Future[_Worker] = asyncio.get_running_loop().create_future()
        self._waiting[function].append(waiter)
        return await waiter

    def _spawn(self, function: str) -> _Worker:
        loop = self._loop = asyncio.get_running_loop()
        ours, theirs = self._ctx.Pipe()
        process = self._ctx.Process(
            target=_worker_main,
            args=(theirs, str(self.root), self._env),
            daemon=True,
            name=f"lambda-{function}",
        )
        process.start()
        theirs.close()
        worker = _Worker(function, process, ours)
        self._workers.append(worker)
        loop.add_reader(ours.fileno(), self._answered, worker)
        return worker

    def _release(self, worker: _Worker) -> None:
        waiting = self._waiting[worker.function]
        while waiting:
            waiter = waiting.popleft()
            if not waiter.done():
                waiter.set_result(worker)
                return
        self._idle[worker.function].append(worker)

    def _answered(self, worker: _Worker) -> None:
        try:
            outcome = worker.conn.recv()
        except (EOFError, OSError):
            self._lost(worker)
            return
        future, worker.future = worker.future, None
        self._release(worker)
        if future is None or future.done():
            return  # its caller gave up (cancelled): the container is free all the same
        if outcome[0] == "ok":
            future.set_result(outcome[1])
        else:
            _, error, remote = outcome
            error.__cause__ = RemoteTraceback(remote)
            future.set_exception(error)

    def _lost(self, worker: _Worker) -> None:
        """A container's pipe closed: it exited. Fail its invocation; a waiter gets a fresh one."""
        assert self._loop is not None
        self._loop.remove_reader(worker.conn.fileno())
        worker.conn.close()
        worker.process.join(1)
        if worker in self._workers:
            self._workers.remove(worker)
        idle = self._idle[worker.function]
        if worker in idle:
            idle.remove(worker)
        code = worker.process.exitcode
        log.error("the container of %s (pid %s) exited (code %s)", worker.function, worker.process.pid, code)
        future, worker.future = worker.future, None
        if future is not None and not future.done():
            future.set_exception(WorkerDied(f"the worker process exited (code {code}) during the invocation"))
        waiting = self._waiting[worker.function]
        while waiting:
            waiter = waiting.popleft()
            if not waiter.done():
                waiter.set_result(self._spawn(worker.function))
                break

    async def shutdown(self) -> None:
        """Let the invocations in flight finish (10 s at most), then stop every container."""
        busy = [w.future for w in self._workers if w.future is not None]
        if busy:
            await asyncio.wait(busy, timeout=10)
        workers, self._workers = self._workers, []
        self._idle.clear()
        for waiting in self._waiting.values():
            for waiter in waiting:
                waiter.cancel()
        self._waiting.clear()
        for w in workers:
            if self._loop is not None:
                self._loop.remove_reader(w.conn.fileno())
            with contextlib.suppress(OSError):
                w.conn.send(None)  # "no more invocations": the worker returns
            w.conn.close()

        def join() -> None:
            for w in workers:
                w.process.join(5)
                if w.process.is_alive():
                    w.process.terminate()
                    w.process.join(5)

        await asyncio.to_thread(join)


# -- inside a worker process ------------------------------------------------------------------
_root = Path()
_loaded: dict[str, Any] = {}


def _worker_main(conn: Any, root: str, env: dict[str, str]) -> None:
    _worker_init(root, env)
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return  # the gateway went away
        if request is None:
            return
        function, event = request
        try:
            outcome: tuple[Any, ...] = ("ok", _invoke(function, event))
        except BaseException as exc:  # noqa: BLE001 - whatever the handler raised goes back to the caller
            outcome = ("error", exc, traceback.format_exc())
        try:
            conn.send(outcome)
        except (BrokenPipeError, EOFError, ConnectionResetError):
            return  # the gateway stopped while this invocation ran: nobody waits for its outcome
        except Exception as exc:  # noqa: BLE001 - a result or an error that does not pickle
            failure = RuntimeError(f"the invocation's outcome cannot be sent back: {exc!r}")
            with contextlib.suppress(BrokenPipeError, EOFError, ConnectionResetError):
                conn.send(("error", failure, ""))


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
