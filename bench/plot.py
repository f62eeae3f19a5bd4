"""The e2e benchmark's latency plot: edit->peer histograms and CDFs, reconnect->resynced CDF.

matplotlib is optional (not a runtime dependency of the project): without it the benchmark still
writes its JSON and prints its table, and :func:`plot_latency` returns None.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _cdf(values: list[float]) -> tuple[list[float], list[float]]:
    s = sorted(values)
    n = len(s)
    return s, [(i + 1) / n for i in range(n)]


def plot_latency(results: dict[str, Any], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display: write the file only
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    scenarios = results.get("scenarios") or {}
    fig, (hist, cdf, rec) = plt.subplots(1, 3, figsize=(16, 4.8))
    for key, s in scenarios.items():
        samples = s.get("latency_samples_ms") or []
        if not samples:
            continue
        sc = s["scenario"]
        label = f"({key}) {sc['workspaces']}x{sc['members']} clients, {s['deliveries_per_s']:.0f} msg/s"
        if "@" not in key:  # the rate sweep's runs go on the CDF only
            top = sorted(samples)[int(0.995 * (len(samples) - 1))]
            hist.hist([x for x in samples if x <= top], bins=80, alpha=0.55, label=label)
        xs, ys = _cdf(samples)
        cdf.plot(xs, ys, label=label, linestyle=":" if "@" in key else "-")
    hist.set_title("edit -> peer latency (up to p99.5)")
    hist.set_xlabel("ms")
    hist.set_ylabel("deliveries")
    hist.legend(fontsize=8)
    cdf.set_title("edit -> peer latency, CDF")
    cdf.set_xscale("log")
    cdf.set_xlabel("ms (log)")
    cdf.axvline(30, color="red", linestyle="--", linewidth=1, label="target p95 30 ms")
    cdf.axhline(0.95, color="grey", linestyle=":", linewidth=1)
    cdf.legend(fontsize=8)
    cdf.grid(True, which="both", alpha=0.3)
    for key, s in scenarios.items():
        if "@" in key:
            continue
        total = [r["total_ms"] for r in s.get("reconnects") or []]
        work = [r["work_ms"] for r in s.get("reconnects") or []]
        if total:
            xs, ys = _cdf(total)
            rec.plot(xs, ys, label=f"({key}) drop -> resynced")
            xs, ys = _cdf(work)
            rec.plot(xs, ys, linestyle="--", label=f"({key}) ticket + open + sync only")
    rec.axvline(300, color="red", linestyle="--", linewidth=1, label="target p95 300 ms")
    rec.axhline(0.95, color="grey", linestyle=":", linewidth=1)
    rec.set_title("reconnect -> resynced, CDF")
    rec.set_xlabel("ms")
    rec.legend(fontsize=8)
    rec.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
