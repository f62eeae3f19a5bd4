"""Pydantic models of the server frames (contract 3.3), for the protocol's JSON Schema and the
browser client's generated TypeScript types. Frames are built at run time by :mod:`collab.protocol.wire`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from collab.errors import ErrorCode
from collab.models import Editing, Notification, Overwrite, PresenceEntry, Task, TaskField, UserRef


# Models of server frames, for the JSON Schema and the generated TypeScript types.
class ServerFrameBase(BaseModel):
    workspace_id: UUID | None
    user_id: str | None
    timestamp: datetime


class TaskEvent(ServerFrameBase):
    type: Literal["task.created", "task.updated", "task.deleted"]
    seq: int
    data: TaskEventData


class TaskEventData(BaseModel):
    task: Task


class MemberEvent(ServerFrameBase):
    type: Literal["member.added", "member.removed", "member.role_changed"]
    seq: int
    data: dict[str, Any]


class PresenceEvent(ServerFrameBase):
    type: Literal["presence.joined", "presence.left", "presence.updated"]
    data: PresenceEntry


class PresenceBatchEvent(BaseModel):
    type: Literal["presence.joined", "presence.left", "presence.updated"]
    user_id: str
    data: PresenceEntry


class PresenceBatchData(BaseModel):
    events: list[PresenceBatchEvent]


class PresenceBatch(ServerFrameBase):
    """v1.2: several presence changes of a workspace in one frame, applied in order."""

    type: Literal["presence.batch"]
    data: PresenceBatchData


class PresenceEditingData(BaseModel):
    user: UserRef
    editing: Editing | None  # null: they stopped (blur, or their connection closed)


class PresenceEditing(ServerFrameBase):
    """v1.3: a user's editing indicator set, refreshed or cleared; to connections that are not away.
    Show it until ``editing.expires_at`` unless refreshed; drop it on ``presence.left``."""

    type: Literal["presence.editing"]
    data: PresenceEditingData


class NotificationCreatedData(BaseModel):
    notification: Notification


class NotificationCreated(ServerFrameBase):
    type: Literal["notification.created"]
    data: NotificationCreatedData


class OverwrittenField(BaseModel):
    field: TaskField
    value: Any  # your value, now replaced
    version: int  # the task version your change made
    at: datetime  # when you made it
    hunks: int | None = None  # description: the conflicting hunks where the other change won


class TaskOverwrittenData(BaseModel):
    task: Task  # the task as committed by the change that overwrote yours
    seq: int | None
    by: UserRef  # who overwrote it
    fields: list[OverwrittenField]


class TaskOverwritten(ServerFrameBase):
    """v1.3: to the user whose change (within the last 60 s) someone else's ``task.update`` just
    overwrote, on each of their connections in the workspace; not stored, not replayed."""

    type: Literal["task.overwritten"]
    data: TaskOverwrittenData


class ErrorBody(BaseModel):
    code: ErrorCode
    message: str
    retry_after_ms: int | None = None
    field: str | None = None
    task: Task | None = None


class AckData(BaseModel):
    request_id: str | None
    ok: bool
    task: Task | None = None
    seq: int | None = None
    error: ErrorBody | None = None
    # v1.3, a task.update with seen_version: the fields it replaced that someone else had changed
    # after that version ([] when none), and the fields merged with a concurrent change
    overwrote: list[Overwrite] | None = None
    merged: list[TaskField] | None = None


class Ack(ServerFrameBase):
    type: Literal["ack"]
    data: AckData


class SyncData(BaseModel):
    seq: int
    events: list[TaskEvent | MemberEvent]
    resync: bool
    presence: list[PresenceEntry]
    notifications: list[Notification]
    # v1.2: more undelivered notifications wait than fitted in this 128 KB reply: sync again
    more_notifications: bool = False
    # v1.2 (issue 15): a large workspace's presence list is longer than a reply's share (32 KB):
    # ``presence`` holds its active users first, and the client reads the whole list over HTTP
    # (GET /workspaces/{id}/presence)
    more_presence: bool = False


class SyncReply(ServerFrameBase):
    type: Literal["sync"]
    data: SyncData


class HeartbeatAckData(BaseModel):
    """``{}`` for a v1 heartbeat; v1.2: the workspace's latest seq (0: unknown, the history is empty),
    and the presence list when the heartbeat probed."""

    seq: int | None = None
    presence: list[PresenceEntry] | None = None
    more_presence: bool = False  # as in ``sync``: the whole list is read over HTTP


class HeartbeatAck(ServerFrameBase):
    type: Literal["heartbeat.ack"]
    data: HeartbeatAckData


class ErrorFrame(ServerFrameBase):
    type: Literal["error"]
    data: ErrorBody


ServerFrame = Annotated[
    TaskEvent
    | MemberEvent
    | PresenceEvent
    | PresenceBatch
    | PresenceEditing
    | NotificationCreated
    | TaskOverwritten
    | Ack
    | SyncReply
    | HeartbeatAck
    | ErrorFrame,
    Field(discriminator="type"),
]
