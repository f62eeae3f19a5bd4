"""Webhooks of a workspace (admins and owners): register, list, delete, redeliver, read attempts.

Their wire models live here, beside the routes, since nothing else uses them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator

from collab.domain import webhooks
from collab.http.routing import TaggedRouter, checked, me, route, rt
from collab.http.schemas import WorkspaceId

router = TaggedRouter("webhooks")
HOOKS = "/workspaces/<workspace_id>/webhooks"
HOOK = f"{HOOKS}/<webhook_id>"

EventType = Literal[
    "task.created",
    "task.updated",
    "task.deleted",
    "member.added",
    "member.removed",
    "member.role_changed",
    "presence.joined",
    "presence.left",
]
WebhookId = Annotated[UUID, Path(description="webhook id")]


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(
        min_length=1,
        max_length=2048,
        description="https URL of a public address (checked now and at every delivery)",
    )
    event_types: list[EventType] = Field(
        default_factory=list,
        max_length=8,
        description="the event types to send; empty: every seq event (presence.* only when listed)",
    )


class Webhook(BaseModel):
    id: UUID
    workspace_id: UUID
    url: str
    event_types: list[str]
    created_by: str
    created_at: datetime
    delivered_seq: int = Field(description="every event up to this seq was delivered (or not wanted)")
    attempts: int = Field(description="failed attempts in a row at the event after delivered_seq")
    failing_since: datetime | None
    next_attempt_at: datetime | None
    last_error: str | None
    status: Literal["active", "failing", "disabled"]
    disabled_at: datetime | None


class WebhookCreated(Webhook):
    secret: str = Field(description="the Standard Webhooks signing secret (whsec_...); shown only now")


class WebhookPage(BaseModel):
    items: list[Webhook]
    next_cursor: None = None


class RedeliveryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    from_seq: int = Field(ge=1, description="the first seq to send again")
    to_seq: int = Field(
        ge=1,
        description=(
            f"the last seq to send again: not below from_seq, at most {webhooks.MAX_REDELIVER - 1} after it"
        ),
    )

    @model_validator(mode="after")
    def _range(self) -> RedeliveryIn:
        if self.to_seq < self.from_seq:
            raise ValueError("to_seq must not be below from_seq")
        if self.to_seq - self.from_seq >= webhooks.MAX_REDELIVER:
            raise ValueError(f"at most {webhooks.MAX_REDELIVER} seqs per redelivery")
        return self


class Redelivery(BaseModel):
    webhook_id: UUID
    from_seq: int
    to_seq: int
    status: Literal["queued"]


class DeliveryAttempt(BaseModel):
    seq: int
    attempt: int
    outcome: Literal["delivered", "failed", "refused"] = Field(
        description="refused: the URL failed the address check at delivery time; nothing was sent"
    )
    status_code: int | None
    error: str | None
    duration_ms: int
    redelivery: bool
    created_at: datetime


class DeliveryAttemptPage(BaseModel):
    items: list[DeliveryAttempt]
    next_cursor: None = None


@route(router, "POST", HOOKS, "create_webhook",
       "Register a webhook endpoint (admin+); the answer holds its secret, shown only this once",
       ok="The new endpoint with its secret", status=201, errors=(403, 404))  # fmt: skip
def create_webhook(workspace_id: WorkspaceId, body: Annotated[WebhookIn, Body()]) -> WebhookCreated:
    return checked(webhooks.register(rt(), me(), str(workspace_id), body.url, list(body.event_types)))


@route(router, "GET", HOOKS, "list_webhooks", "The workspace's webhook endpoints and their state (admin+)",
       ok="Every endpoint (at most 10: one page)", errors=(403, 404))  # fmt: skip
def list_webhooks(workspace_id: WorkspaceId) -> WebhookPage:
    return checked(webhooks.list_hooks(rt().db, me(), str(workspace_id)))


@route(router, "DELETE", HOOK, "delete_webhook", "Delete a webhook endpoint (admin+)",
       ok="Deleted", status=204, errors=(403, 404))  # fmt: skip
def delete_webhook(workspace_id: WorkspaceId, webhook_id: WebhookId):  # a 204: no return model
    webhooks.delete(rt(), me(), str(workspace_id), str(webhook_id))
    return Response(204)


@route(router, "POST", f"{HOOK}/redeliveries", "redeliver_webhook",
       "Send the events from_seq..to_seq to the endpoint again, in order (admin+)",
       ok="Queued", status=202, errors=(403, 404))  # fmt: skip
def redeliver_webhook(
    workspace_id: WorkspaceId, webhook_id: WebhookId, body: Annotated[RedeliveryIn, Body()]
) -> Redelivery:
    return checked(
        webhooks.redeliver(rt(), me(), str(workspace_id), str(webhook_id), body.from_seq, body.to_seq)
    )


@route(router, "GET", f"{HOOK}/deliveries", "list_webhook_deliveries",
       "The endpoint's latest delivery attempts, newest first (admin+)",
       ok="Attempts", errors=(403, 404))  # fmt: skip
def list_webhook_deliveries(
    workspace_id: WorkspaceId,
    webhook_id: WebhookId,
    limit: Annotated[int, Query(ge=1, le=200)] = 100,
) -> DeliveryAttemptPage:
    return checked(webhooks.deliveries(rt().db, me(), str(workspace_id), str(webhook_id), limit))
