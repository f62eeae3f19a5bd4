"""Garbage collections that hold a process for long: the gateway of ``collab dev`` reports its own,
and the benchmarks' client processes record theirs, since either pause looks like latency."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable


def watch(threshold_ms: float, report: Callable[[float, int], None]) -> None:
    """Call ``report(ms, generation)`` after every collection of this process that took
    ``threshold_ms`` or more of wall time (a process waiting for a core counts that wait too)."""
    started = [0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter_ns()
        elif (ms := (time.perf_counter_ns() - started[0]) / 1e6) >= threshold_ms:
            report(ms, int(info.get("generation", -1)))

    gc.callbacks.append(callback)
