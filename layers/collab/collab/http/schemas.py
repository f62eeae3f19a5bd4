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
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from collab.errors import ErrorCode
from collab.models import (
    CONTROLS,
    PLAIN_TEXT,
    SPACES,
    HistoryEntry,
    Member,
    Name,
    Notification,
    PresenceEntry,
    Role,
    Task,
    UserId,
    Workspace,
)
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
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "Launch plan"}]})

    name: Name


# The text rule (models.CONTROLS) and no white space, one "@": refused here as 422, never a 500 in
# Postgres (its text cannot even hold NUL).
Email = Annotated[
    str, Field(min_length=3, max_length=254, pattern=rf"^[^@{CONTROLS}{SPACES}]+@[^@{CONTROLS}{SPACES}]+$")
]


class MemberById(_In):
    """Add the user with this id."""

    user_id: UserId
    role: Role = "member"


class MemberByEmail(_In):
    """Add the user with this email (compared case-insensitively)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"email": "bob@example.com", "role": "member"}]}
    )

    email: Email
    role: Role = "member"


# Exactly one of ``user_id`` and ``email``: two shapes, each refusing the other's field.
MemberIn = MemberById | MemberByEmail


class RoleIn(_In):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"role": "admin"}]})

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


class HistoryPage(BaseModel):
    """v1.3: a task's changes, newest first."""

    items: list[HistoryEntry]
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
# A user id in a path arrives percent-encoded (API Gateway hands ``rawPath`` over as sent): it is
# decoded first, then held to the rule of every user id (models.UserId), which is what is documented.
MemberId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=128,
        pattern=PLAIN_TEXT,
        description="user id (URL-encoded in the path)",
        # the before-validator hides the pattern from the generated schema: said again, same constant
        json_schema_extra={"pattern": PLAIN_TEXT},
    ),
    BeforeValidator(lambda raw: unquote(raw) if isinstance(raw, str) else raw),  # runs first
]
# A page cursor is opaque: the server writes unpadded base64url (the last item's position, at most
# CURSOR_MAX_LENGTH characters). Any string of that alphabet and length is accepted; one that names no
# position is past the end of the list and gets an empty page, never a 422.
CURSOR_MAX_LENGTH = 128
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"
Cursor = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=CURSOR_MAX_LENGTH,
        pattern=CURSOR_PATTERN,
        description="next_cursor of the previous page (opaque)",
    ),
]
NotificationCursor = Annotated[UUID | None, Query(description="next_cursor of the previous page")]
Limit = Annotated[int, Query(ge=1, le=200)]
