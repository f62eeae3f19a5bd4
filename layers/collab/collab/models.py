"""The objects of contract section 3.6, as pydantic models (one definition for validation, wire
form and the JSON Schema the browser client's types are generated from)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

TaskStatus = Literal["todo", "in_progress", "done"]
Priority = Literal["low", "medium", "high", "urgent"]
Role = Literal["owner", "admin", "member"]
PresenceStatus = Literal["active", "away"]
# The writable fields of a task (contract 3.6): what a patch may carry, what provenance is kept of.
TaskField = Literal["title", "description", "status", "priority", "due_date", "assigned_to"]

# The text rule of contract 3.6, decided once here as patterns: no control characters other than
# newline and tab (C0 but tab and newline, DEL, C1), and for titles and names at least one character
# that is neither a control nor white space. Validation and every JSON Schema generated from these
# types (docs/openapi.json, web/protocol.*) carry the same pattern, so a client sees the real rule.
# The classes are spelled out (no \s): regex dialects disagree on what white space is.
CONTROLS = r"\x00-\x08\x0b-\x1f\x7f-\x9f"
SPACES = r"\t\n \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
PLAIN_TEXT = rf"^[^{CONTROLS}]*$"
NOT_BLANK_TEXT = rf"^[^{CONTROLS}]*[^{CONTROLS}{SPACES}][^{CONTROLS}]*$"

Title = Annotated[str, Field(min_length=1, max_length=200, pattern=NOT_BLANK_TEXT)]
Description = Annotated[str, Field(max_length=10_000, pattern=PLAIN_TEXT)]
UserId = Annotated[str, Field(min_length=1, max_length=128, pattern=PLAIN_TEXT)]
Name = Annotated[str, Field(min_length=1, max_length=100, pattern=NOT_BLANK_TEXT)]

_PATTERN_MESSAGES = {
    PLAIN_TEXT: "must not contain control characters other than newline and tab",
    NOT_BLANK_TEXT: "must not be blank or contain control characters other than newline and tab",
}


def error_message(error: Mapping[str, Any]) -> str:
    """The message of one pydantic error, with the text rule's patterns said in words."""
    if error.get("type") == "string_pattern_mismatch":
        pattern = (error.get("ctx") or {}).get("pattern")
        if pattern in _PATTERN_MESSAGES:
            return _PATTERN_MESSAGES[pattern]
    return str(error.get("msg") or "invalid").removeprefix("Value error, ")


class Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class FieldMark(Wire):
    """v1.3 provenance of one field: who changed it last, the task version that change made, when."""

    by: str
    version: int
    at: datetime


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
    # v1.3: per writable field, its last change. A field absent was last set by the task's creation
    # (by ``created_by``, version 1, at ``created_at``), which keeps a new task's frames small. Only
    # changes that altered the value count.
    fields: dict[TaskField, FieldMark] = Field(default_factory=dict)


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


class Editing(Wire):
    """v1.3: what a user is editing. Shown until ``expires_at`` unless refreshed (15 s after the last
    ``presence.update`` that carried it); gone at once when they blur or disconnect."""

    task_id: UUID
    field: TaskField
    expires_at: datetime


class PresenceEntry(Wire):
    user: UserRef
    status: PresenceStatus
    viewing: UUID | None
    last_seen: datetime
    editing: Editing | None = None  # v1.3


# v1.3: one field's change in a task's history. "from"/"to" are JSON values (a due date as text).
FieldChange = TypedDict("FieldChange", {"from": Any, "to": Any})


class HistoryEntry(Wire):
    """v1.3: one change of a task (``GET /tasks/{task_id}/history``), from the activity log."""

    seq: int
    actor: UserRef
    at: datetime
    type: Literal["task.created", "task.updated", "task.deleted"]  # the event peers received
    kind: (
        Literal["create", "update", "delete", "undo", "redo"] | None
    )  # what the actor did (None: before v1.3)
    target_seq: int | None = None  # undo / redo: the seq of the change reverted or re-applied
    changes: dict[str, FieldChange]  # field -> {"from", "to"}; "deleted" for deletions and restores


class Overwrite(Wire):
    """v1.3 conflict receipt item: a field a change replaced that someone else had changed after
    the version its author saw (``seen_version``)."""

    field: TaskField
    value: Any  # the value replaced (for a description merged with conflicting hunks: the text before)
    by: UserRef  # who had changed it
    version: int  # the task version their change made
    at: datetime  # when
    hunks: int | None = None  # description only: the conflicting hunks where this change's text won


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
