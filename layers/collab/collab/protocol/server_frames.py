"""Pydantic models of the server frames (contract 3.3), for the protocol's JSON Schema and the
browser client's generated TypeScript types. Frames are built at run time by :mod:`collab.protocol.wire`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from collab.errors import ErrorCode
from collab.models import Notification, PresenceEntry, Task


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


class NotificationCreatedData(BaseModel):
    notification: Notification


class NotificationCreated(ServerFrameBase):
    type: Literal["notification.created"]
    data: NotificationCreatedData


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
    | NotificationCreated
    | Ack
    | SyncReply
    | HeartbeatAck
    | ErrorFrame,
    Field(discriminator="type"),
]
