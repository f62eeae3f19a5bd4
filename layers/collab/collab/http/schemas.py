"""The HTTP API's own wire models: request bodies, pages, the error body, and the typed path and
query parameters. The objects themselves (Task, Workspace, Member, ...) are :mod:`collab.models`.
The OpenAPI document is generated from these (``python -m collab_dev.openapi_export``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from urllib.parse import unquote
from uuid import UUID

from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from collab.errors import ErrorCode, ValidationError
from collab.models import Member, Name, Notification, PresenceEntry, Role, Task, UserId, Workspace
from collab.protocol.server_frames import MemberEvent, TaskEvent


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TicketRequest(_In):
    workspace_id: UUID


class TicketOut(BaseModel):
    ticket: str = Field(description="single-use JWT, valid for 5 minutes")
    url: str = Field(description="the WebSocket URL to open, with the ticket in its query")
    expires_at: datetime


class WorkspaceIn(_In):
    name: Name


# No control characters (Postgres text cannot even hold NUL): refused here as 422, never a 500 there.
Email = Annotated[
    str, Field(min_length=3, max_length=254, pattern=r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+$")
]


class MemberIn(_In):
    """Exactly one of ``user_id`` and ``email``; the user must have signed in once before."""

    user_id: UserId | None = None
    email: Email | None = None
    role: Role = "member"


class RoleIn(_In):
    role: Role


class ReadIn(_In):
    ids: Annotated[list[UUID], Field(min_length=1, max_length=100)]


class ReadOut(BaseModel):
    read: list[UUID] = Field(description="the ids now marked read (ids of others' notifications are ignored)")


class WorkspacePage(BaseModel):
    items: list[Workspace]
    next_cursor: str | None


class MemberPage(BaseModel):
    items: list[Member]
    next_cursor: None = None


class TaskPage(BaseModel):
    items: list[Task]
    next_cursor: str | None


class ActivityPage(BaseModel):
    items: list[TaskEvent | MemberEvent]
    next_cursor: int | None = Field(description="pass as `before` to get the next (older) page")


class PresencePage(BaseModel):
    items: list[PresenceEntry]
    next_cursor: None = None


class NotificationPage(BaseModel):
    items: list[Notification]
    next_cursor: str | None


class ErrorDetail(BaseModel):
    code: ErrorCode
    message: str
    field: str | None = None
    retry_after_ms: int | None = None
    task: Task | None = Field(default=None, description="on a base_version conflict: the current task")


class ErrorResponse(BaseModel):
    error: ErrorDetail


# -- path and query parameters ---------------------------------------------------------------------
WorkspaceId = Annotated[UUID, Path(description="workspace id")]
TaskId = Annotated[UUID, Path(description="task id")]
MemberId = Annotated[str, Path(min_length=1, max_length=400, description="user id (URL-encoded)")]
Cursor = Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page")]
NotificationCursor = Annotated[UUID | None, Query(description="next_cursor of the previous page")]
Limit = Annotated[int, Query(ge=1, le=200)]

_user_ids: TypeAdapter[str] = TypeAdapter(UserId)


def member_id(raw: str) -> str:
    """A user id from the path: API Gateway hands ``rawPath`` over still percent-encoded."""
    try:
        return _user_ids.validate_python(unquote(raw))
    except PydanticValidationError:
        raise ValidationError("path.user_id: not a valid user id", field="path.user_id") from None
