"""The WebSocket protocol (contract section 3): client frames, server frames, parsing.

Client frames are a discriminated union on ``action``. Parsing is split in two steps because the
contract answers them differently: a frame that is not JSON or has no known action gets an ``error``
frame; a known action with bad fields gets an ``ack`` with ``validation_error`` naming the field.
Server frames are built by :func:`frame`; their models below exist for the JSON Schema from which
the browser client's TypeScript types are generated (``python -m collab_dev.schema_export``).
"""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from collab.errors import PayloadTooLarge, ValidationError
from collab.models import (
    Description,
    PresenceStatus,
    Priority,
    TaskField,
    TaskStatus,
    Title,
    UserId,
    error_message,
)
from collab.protocol.wire import dumps, frame

__all__ = ["dumps", "frame"]

MAX_FRAME_BYTES = 32 * 1024  # API Gateway's WebSocket frame size; the contract's per-frame limit


class _Frame(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskDraft(_Strict):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={"examples": [{"title": "Write the release notes", "priority": "high"}]},
    )

    id: UUID | None = None
    title: Title
    description: Description = ""
    status: TaskStatus = "todo"
    priority: Priority = "medium"
    due_date: date | None = None
    assigned_to: UserId | None = None


_UNSET: Any = None  # the value of a field not sent; never validated, never written (patch())


def _absent(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # not sent means unchanged; null is not a value of these fields


class TaskChanges(_Strict):
    """Any subset of the writable fields; only the fields sent are written (``model_fields_set``).
    ``title``, ``description``, ``status`` and ``priority`` cannot be null (the document says so:
    their schemas are not nullable); ``due_date`` and ``assigned_to`` are cleared with null."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, json_schema_extra={"minProperties": 1, "examples": [{"status": "done"}]}
    )

    title: Title = Field(default=_UNSET, json_schema_extra=_absent)
    description: Description = Field(default=_UNSET, json_schema_extra=_absent)
    status: TaskStatus = Field(default=_UNSET, json_schema_extra=_absent)
    priority: Priority = Field(default=_UNSET, json_schema_extra=_absent)
    due_date: date | None = None
    assigned_to: UserId | None = None

    def patch(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


class Heartbeat(_Frame):
    """v1: ``{"action": "heartbeat"}``, answered every time. v1.2 adds ``seq`` (the last seq the client
    applied; its presence makes the heartbeat quiet: answered only when ``probe`` or when the client is
    behind), ``mode`` (the connection's: its deadline and its user's status) and ``probe``."""

    action: Literal["heartbeat"]
    seq: Annotated[int, Field(ge=0)] | None = None
    mode: PresenceStatus | None = None
    probe: bool = False


class Sync(_Frame):
    action: Literal["sync"]
    since: Annotated[int, Field(ge=0)] | None = None


class TaskCreate(_Frame):
    action: Literal["task.create"]
    request_id: UUID
    task: TaskDraft


class TaskUpdate(_Frame):
    action: Literal["task.update"]
    request_id: UUID
    task_id: UUID
    changes: TaskChanges
    base_version: Annotated[int, Field(ge=1)] | None = None
    # v1.3: the task version the user was looking at when they made this edit. Not a condition: the
    # change is applied (per-field last write wins) and its ack lists what it overwrote; a
    # description changed concurrently since this version is merged rather than replaced.
    seen_version: Annotated[int, Field(ge=1)] | None = None


class TaskDelete(_Frame):
    action: Literal["task.delete"]
    request_id: UUID
    task_id: UUID


class TaskUndo(_Frame):
    """v1.3: revert the caller's own change recorded at ``seq`` (its fields back to their values
    before it; a deletion undone restores the task, a creation undone deletes it)."""

    action: Literal["task.undo"]
    request_id: UUID
    seq: Annotated[int, Field(ge=1)]


class TaskRedo(_Frame):
    """v1.3: re-apply the caller's change at ``seq`` that they undid."""

    action: Literal["task.redo"]
    request_id: UUID
    seq: Annotated[int, Field(ge=1)]


class NotificationRead(_Frame):
    action: Literal["notification.read"]
    request_id: UUID
    notification_ids: Annotated[list[UUID], Field(min_length=1, max_length=100)]


class EditingTarget(_Strict):
    task_id: UUID
    field: TaskField


class PresenceUpdate(_Frame):
    """``editing`` (v1.3): the field the user is typing in (refresh every 5 s while they type; peers
    drop it 15 s after the last refresh); ``null`` on blur. A frame that carries ``editing`` (even
    null) counts against the editing budget, not the 100-frame one."""

    action: Literal["presence.update"]
    status: PresenceStatus
    viewing: UUID | None = None
    editing: EditingTarget | None = None

    @property
    def carries_editing(self) -> bool:
        return "editing" in self.model_fields_set


ClientFrame = Annotated[
    Heartbeat
    | Sync
    | TaskCreate
    | TaskUpdate
    | TaskDelete
    | TaskUndo
    | TaskRedo
    | NotificationRead
    | PresenceUpdate,
    Field(discriminator="action"),
]
ACTIONS = (
    "heartbeat",
    "sync",
    "task.create",
    "task.update",
    "task.delete",
    "task.undo",
    "task.redo",
    "notification.read",
    "presence.update",
)
MUTATIONS = ("task.create", "task.update", "task.delete", "task.undo", "task.redo", "notification.read")
_adapter: TypeAdapter[Any] | None = None


class BadFrame(Exception):
    """Not JSON, not an object, or no known ``action``: answered with an ``error`` frame."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def decode(body: str | bytes | None) -> dict[str, Any]:
    """Step 1: size and JSON. Raises :class:`PayloadTooLarge` or :class:`BadFrame`."""
    raw = body.encode() if isinstance(body, str) else (body or b"")
    if len(raw) > MAX_FRAME_BYTES:
        raise PayloadTooLarge(f"a frame is at most {MAX_FRAME_BYTES} bytes")
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deep
        raise BadFrame("validation_error", "frame is not valid JSON") from None
    if not isinstance(obj, dict):
        raise BadFrame("validation_error", "frame must be a JSON object")
    action = obj.get("action")
    if action not in ACTIONS:
        raise BadFrame("validation_error", "unknown action" if action is not None else "missing action")
    return obj


def parse(obj: dict[str, Any]) -> Any:
    """Step 2: fields. Raises :class:`ValidationError` naming the first bad field."""
    global _adapter
    if _adapter is None:
        _adapter = TypeAdapter(ClientFrame)
    try:
        parsed = _adapter.validate_python(obj)
    except PydanticValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err["loc"][1:]]  # drop the union tag
        field = ".".join(loc) or "frame"
        raise ValidationError(f"{field}: {error_message(err)}", field=field) from None
    # An update changes at least one field and never sets a required one to null: checked here, with
    # the fields, so such a frame is refused before it counts against the rate limit or claims its id.
    if parsed.action == "task.update" and not parsed.changes.patch():
        raise ValidationError("changes: at least one field is required", field="changes")
    return parsed


def request_id_of(obj: dict[str, Any]) -> str | None:
    rid = obj.get("request_id")
    return rid if isinstance(rid, str) and len(rid) <= 64 else None


# -- server frames ------------------------------------------------------------------------------
# Built as dicts by collab.protocol.wire; their pydantic models (for the JSON Schema and the TypeScript types)
# live in collab.protocol.server_frames and are imported only when asked for, to keep them out of cold starts.
_FRAME_MODELS = (
    "ServerFrameBase",
    "TaskEvent",
    "TaskEventData",
    "MemberEvent",
    "PresenceEvent",
    "PresenceBatchEvent",
    "PresenceBatchData",
    "PresenceBatch",
    "PresenceEditingData",
    "PresenceEditing",
    "NotificationCreatedData",
    "NotificationCreated",
    "OverwrittenField",
    "TaskOverwrittenData",
    "TaskOverwritten",
    "ErrorBody",
    "AckData",
    "Ack",
    "SyncData",
    "SyncReply",
    "HeartbeatAckData",
    "HeartbeatAck",
    "ErrorFrame",
    "ServerFrame",
)


def __getattr__(name: str) -> Any:
    if name in _FRAME_MODELS:
        from collab.protocol import server_frames

        return getattr(server_frames, name)
    raise AttributeError(name)
