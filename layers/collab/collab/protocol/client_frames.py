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
from collab.models import Description, PresenceStatus, Priority, TaskStatus, Title, UserId
from collab.protocol.wire import dumps, frame

__all__ = ["dumps", "frame"]

MAX_FRAME_BYTES = 32 * 1024  # API Gateway's WebSocket frame size; the contract's per-frame limit


class _Frame(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskDraft(_Strict):
    id: UUID | None = None
    title: Title
    description: Description = ""
    status: TaskStatus = "todo"
    priority: Priority = "medium"
    due_date: date | None = None
    assigned_to: UserId | None = None


class TaskChanges(_Strict):
    """Any subset of the writable fields; only the fields sent are written (``model_fields_set``)."""

    title: Title | None = None
    description: Description | None = None
    status: TaskStatus | None = None
    priority: Priority | None = None
    due_date: date | None = None
    assigned_to: UserId | None = None

    def patch(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in self.model_fields_set}
        for required in ("title", "description", "status", "priority"):
            if required in out and out[required] is None:
                raise ValidationError(f"changes.{required}: may not be null", field=f"changes.{required}")
        return out


class Heartbeat(_Frame):
    action: Literal["heartbeat"]
    # v1.2: the last seq the client applied, shown by the delivery tracer (optional).
    seq: Annotated[int, Field(ge=0)] | None = None


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


class TaskDelete(_Frame):
    action: Literal["task.delete"]
    request_id: UUID
    task_id: UUID


class NotificationRead(_Frame):
    action: Literal["notification.read"]
    request_id: UUID
    notification_ids: Annotated[list[UUID], Field(min_length=1, max_length=100)]


class PresenceUpdate(_Frame):
    action: Literal["presence.update"]
    status: PresenceStatus
    viewing: UUID | None = None


ClientFrame = Annotated[
    Heartbeat | Sync | TaskCreate | TaskUpdate | TaskDelete | NotificationRead | PresenceUpdate,
    Field(discriminator="action"),
]
ACTIONS = (
    "heartbeat",
    "sync",
    "task.create",
    "task.update",
    "task.delete",
    "notification.read",
    "presence.update",
)
MUTATIONS = ("task.create", "task.update", "task.delete", "notification.read")
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
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise ValidationError(f"{field}: {msg}", field=field) from None
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
    "NotificationCreatedData",
    "NotificationCreated",
    "ErrorBody",
    "AckData",
    "Ack",
    "SyncData",
    "SyncReply",
    "HeartbeatAck",
    "ErrorFrame",
    "ServerFrame",
)


def __getattr__(name: str) -> Any:
    if name in _FRAME_MODELS:
        from collab.protocol import server_frames

        return getattr(server_frames, name)
    raise AttributeError(name)
