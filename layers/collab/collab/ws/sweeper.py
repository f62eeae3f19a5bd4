"""The scheduled sweep: remove connections that stopped heartbeating (only those due)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from collab.domain import presence
from collab.observability import MetricUnit, logger, metrics

if TYPE_CHECKING:
    from collab.runtime import Runtime


def handle(rt: Runtime) -> dict[str, Any]:
    removed = presence.sweep(rt, rt.gateway_for(None))
    metrics.add_metric(name="SweptConnections", unit=MetricUnit.Count, value=removed)
    logger.info("swept", extra={"removed": removed})
    return {"removed": removed}
