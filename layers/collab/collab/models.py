"""The objects of contract section 3.6, as pydantic models (one definition for validation, wire
form and the JSON Schema the browser client's types are generated from)."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

TaskStatus = Literal["todo", "in_progress", "done"]
Priority = Literal["low", "medium", "high", "urgent"]
Role = Literal["owner", "admin", "member"]
PresenceStatus = Literal["active", "away"]

# No NUL or control characters other than newline and tab (contract 3.6): C0, DEL and C1.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _plain_text(v: str) -> str:
    if _CONTROL.search(v):
        raise ValueError("must not contain control characters other than newline and tab")
    return v


def _title(v: str) -> str:
    _plain_text(v)
    if not v.strip():
        raise ValueError("must not be blank")
    return v


Title = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_title)]
Description = Annotated[str, Field(max_length=10_000), AfterValidator(_plain_text)]
UserId = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(_plain_text)]
Name = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_title)]


class Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class Task(Wire):
    id: UUID
    workspace_id: UUID | None
    title: str
    description: str
    status: TaskStatus
    priority: Priority
    due_date: date | None
    assigned_to: str | None
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime
    version: int
    deleted: bool


class Notification(Wire):
    id: UUID
    type: str
    workspace_id: UUID | None
    task_id: UUID | None
    actor_id: str | None
    payload: dict[str, Any]
    created_at: datetime
    delivered_at: datetime | None
    read_at: datetime | None


class UserRef(Wire):
    id: str
    display_name: str


class PresenceEntry(Wire):
    user: UserRef
    status: PresenceStatus
    viewing: UUID | None
    last_seen: datetime


class Member(Wire):
    user_id: str
    email: str | None
    display_name: str
    role: Role
    joined_at: datetime


class Workspace(Wire):
    id: UUID
    name: str
    role: Role
    created_by: str
    created_at: datetime
    updated_at: datetime
    member_count: int
    last_seq: int


TASK_WRITABLE = ("title", "description", "status", "priority", "due_date", "assigned_to")
