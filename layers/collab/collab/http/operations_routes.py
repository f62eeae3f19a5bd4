"""What the operators of a workspace read (owners and admins): the delivery tracer's events and
connections. Wire models beside the routes, since nothing else uses them."""

from __future__ import annotations

from typing import Annotated, Literal

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
