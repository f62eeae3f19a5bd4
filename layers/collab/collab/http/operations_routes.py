"""What the operators of a workspace read (owners and admins): the delivery tracer's events and
connections, and the cost meter. Wire models beside the routes, since nothing else uses them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import BaseModel, Field

from collab.domain import tracer
from collab.http.routing import TaggedRouter, checked, me, route, rt
from collab.http.schemas import WorkspaceId

router = TaggedRouter("operations")
WS = "/workspaces/<workspace_id>"

Outcome = Literal["delivered", "gone", "throttled", "failed", "sender", "not_synced", "removed"]


class ConnectionOutcome(BaseModel):
    connection_id: str | None = Field(description="null for a removed member (no connection)")
    user_id: str | None
    outcome: Outcome = Field(
        description="delivered (2xx) | gone (410: the connection was dead) | throttled (429 after"
        " retries) | failed (other error) | sender (got the ack) | not_synced (connected, no sync"
        " yet: gets it from its first sync) | removed (no longer a member at this seq)"
    )
    removed_at_seq: int | None = None


class TracedEvent(BaseModel):
    seq: int
    type: str
    timestamp: str
    counts: dict[str, int]
    connections: list[ConnectionOutcome]


class TracedEventPage(BaseModel):
    items: list[TracedEvent]
    next_cursor: None = None


class LiveConnection(BaseModel):
    connection_id: str
    user_id: str
    display_name: str
    connected_at_ms: int | None
    last_heartbeat_ms: int | None
    synced: bool = Field(description="a fan-out target (it has sent sync)")
    last_ack_seq: int | None = Field(description="the last seq the client reported applying (heartbeat seq)")


class LiveConnectionPage(BaseModel):
    items: list[LiveConnection]
    next_cursor: None = None


@route(router, "GET", f"{WS}/deliveries", "list_deliveries",
       "The delivery tracer: per recent event (the last 100), each connection's outcome (admin+)",
       ok="Traced events, newest first (one with seq)", errors=(403, 404))  # fmt: skip
def list_deliveries(
    workspace_id: WorkspaceId,
    seq: Annotated[int | None, Query(ge=1, description="only this event")] = None,
) -> TracedEventPage:
    return checked(tracer.deliveries(rt(), me(), str(workspace_id), seq))


@route(router, "GET", f"{WS}/connections", "list_connections",
       "The workspace's live connections: synced, last heartbeat, last acknowledged seq (admin+)",
       ok="Every registered connection", errors=(403, 404))  # fmt: skip
def list_connections(workspace_id: WorkspaceId) -> LiveConnectionPage:
    return checked(tracer.connections(rt(), me(), str(workspace_id)))


class Cost(BaseModel):
    api_gateway_usd: float
    lambda_usd: float
    total_usd: float


class Usage(BaseModel):
    workspace_id: str
    month: str = Field(description="YYYY-MM, UTC")
    frames_in: int = Field(description="WebSocket frames from the workspace's connections")
    replies_out: int = Field(description="route responses to them (ack, sync, heartbeat.ack)")
    posts_out: int = Field(description="Management API posts to its connections (events, presence)")
    connection_minutes: float = Field(description="heartbeats / 2 (clients beat every 30 s)")
    invocations: int
    handler_ms: float = Field(description="time in the WebSocket handlers on its frames")
    cost_to_date: Cost
    monthly_estimate_usd: float = Field(description="the month at the current pace (the bench/cost.py model)")
    budget_usd: float | None
    over_budget: bool


Month = Annotated[
    str | None, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM; default: this month")
]


@route(router, "GET", f"{WS}/usage", "get_usage",
       "The workspace's metered use this month, its cost so far and the monthly estimate (admin+)",
       ok="Usage and cost", errors=(403, 404))  # fmt: skip
def get_usage(workspace_id: WorkspaceId, month: Month = None) -> Usage:
    return checked(usage_report(str(workspace_id), month))


def usage_report(workspace_id: str, month: str | None) -> dict[str, Any]:
    from collab.domain import usage

    runtime = rt()
    tracer.require_admin(runtime, me(), workspace_id)
    return usage.report(runtime, workspace_id, month)
