"""The scheduled sweep, every minute: remove connections that stopped heartbeating (only those
due), close connections of users who are no longer members (:mod:`collab.domain.revocation`), and
prune what is past its retention (:mod:`collab.domain.retention`). Each part runs even if another
failed: a Redis outage does not stop the pruning, nor a Postgres one the sweep."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from collab.domain import presence, retention, revocation
from collab.errors import CollabError
from collab.observability import MetricUnit, logger, metrics

if TYPE_CHECKING:
    from collab.runtime import Runtime


def handle(rt: Runtime) -> dict[str, Any]:
    gateway = rt.gateway_for(None)
    out: dict[str, Any] = {"removed": 0, "revoked": 0, "pruned": {}}
    try:
        out["removed"] = presence.sweep(rt, gateway)
        metrics.add_metric(name="SweptConnections", unit=MetricUnit.Count, value=out["removed"])
    except CollabError as exc:
        logger.warning("sweep failed", extra={"reason": exc.code})
    try:
        out["revoked"] = revocation.reconcile(rt, gateway)
        metrics.add_metric(name="RevokedConnections", unit=MetricUnit.Count, value=out["revoked"])
    except CollabError as exc:
        logger.warning("reconciling connections with memberships failed", extra={"reason": exc.code})
    try:
        out["pruned"] = retention.prune(rt.db, rt.settings.limits)
    except CollabError as exc:
        logger.warning("pruning failed", extra={"reason": exc.code})
    logger.info("swept", extra=out)
    return out
