"""The HTTP API (contract section 4): Powertools' HTTP resolver over the domain modules.

A request goes through three steps:

1. :func:`handle` checks what must hold before any route runs, in the order API Gateway would:
   the body's size (413) and encoding (400, 415), then the bearer token (401). The caller's user
   row is created or refreshed from the token (once per container per identity).
2. The resolver matches the route and validates path, query and body against the route's pydantic
   types (``enable_validation=True``), which is also what the OpenAPI document is generated from.
3. The route calls one domain function (:mod:`collab.domain.workspaces`, :mod:`collab.domain.tasks`,
   :mod:`collab.domain.notifications`) and, after the commit, publishes what it committed, so an HTTP
   mutation emits exactly the events, seqs, activity and notifications of its WebSocket twin.

Every failure becomes ``{"error": {"code", "message", ...}}`` in one place, :func:`error_response`.
A bad request is never a 500: a 5xx means the server or a backing service failed.

Regenerate the committed document after changing a route::

    python -m collab.http.app --openapi > docs/openapi.json
"""

from __future__ import annotations

import base64
import binascii
import json
import sys
import threading
import weakref
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import unquote
from uuid import UUID

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import ResponseBuilder
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
    ResponseValidationError,
)
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from collab.auth import tokens
from collab.domain import events, notifications, tasks, workspaces
from collab.errors import CollabError, ErrorCode, NotFound, PayloadTooLarge, Unauthorized, ValidationError
from collab.models import Member, Name, Notification, PresenceEntry, Role, Task, UserId, Workspace
from collab.observability import logger
from collab.protocol.client_frames import TaskChanges, TaskDraft
from collab.protocol.server_frames import MemberEvent, TaskEvent
from collab.runtime import Runtime, runtime

API_VERSION = "1"  # the contract's version (docs/contract.md)
# 64 KB: the largest legitimate body (a task with a 10,000-character description, JSON-escaped) is
# well under it; anything bigger is refused before it is parsed. API Gateway itself allows 10 MB.
MAX_BODY_BYTES = 64 * 1024
SEEN_USERS_MAX = 10_000  # identities whose user row this container already refreshed


class BadRequest(ValidationError):
    """The request could not be read at all (not JSON, not UTF-8, bad base64)."""

    status = 400
    default_message = "malformed request"


class UnsupportedMediaType(ValidationError):
    status = 415
    default_message = "the body must be application/json"


# -- wire models of the HTTP API (requests and the responses not defined in collab.models) ---------
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


# -- errors: the one mapping -----------------------------------------------------------------------
def _validation(exc: RequestValidationError) -> CollabError:
    errs = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errs):
        return BadRequest("the body is not valid JSON")
    if not errs:
        return ValidationError()
    first = errs[0]
    field = ".".join(str(p) for p in first.get("loc", ())) or "request"
    msg = str(first.get("msg") or "invalid").removeprefix("Value error, ")
    return ValidationError(f"{field}: {msg}", field=field)


def error_response(exc: BaseException) -> Response:
    """The HTTP response for any exception: status from the error tree, body ``{"error": ...}``."""
    if isinstance(exc, RequestValidationError):
        err: CollabError = _validation(exc)
    elif isinstance(exc, RequestUnsupportedContentType):
        err = UnsupportedMediaType()
    elif isinstance(exc, NotFoundError):
        err = NotFound("no such route")
    elif isinstance(exc, CollabError):
        err = exc
    else:
        err = CollabError()
    if isinstance(exc, ResponseValidationError):
        logger.error("response does not match its model", extra={"errors": str(exc.errors())[:2000]})
    elif err.status >= 500:
        logger.exception("request failed", exc_info=exc)
    headers: dict[str, str] = {"Cache-Control": "no-store"}
    if err.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="collab"'
    retry = err.extra.get("retry_after_ms")
    if err.status == 429 and retry:
        headers["Retry-After"] = str(max(1, -(-int(retry) // 1000)))
    return Response(err.status, "application/json", {"error": err.to_wire()}, headers)


# -- the resolver ----------------------------------------------------------------------------------
app = APIGatewayHttpResolver(
    enable_validation=True,
    # A response that does not match its declared model is a server bug: 500, not the default 422.
    response_validation_error_http_code=500,
    # The local gateway serves this API under /api/ (contract section 6).
    strip_prefixes=["/api"],
)


@app.exception_handler(Exception)
def _on_error(exc: Exception) -> Response:
    return error_response(exc)


_DESCRIPTIONS = {
    400: "Malformed request: the body is not JSON, not UTF-8 or not valid base64",
    401: "Missing, malformed or expired bearer token",
    403: "Not a member of the workspace, or the role is not enough",
    404: "Unknown or invisible resource",
    409: "Conflict with the current state",
    413: f"The body is larger than {MAX_BODY_BYTES} bytes",
    415: "The body is not application/json",
    422: "A path, query or body value is invalid",
    500: "Internal error",
    503: "A backing service did not answer; retry later",
}
_READ = (401, 413, 422, 500, 503)
_WRITE = (400, 401, 413, 415, 422, 500, 503)


def _responses(ok: int, description: str, errors: tuple[int, ...], *more: int) -> dict[int, Any]:
    out: dict[int, Any] = {ok: {"description": description}}
    for code in sorted({*errors, *more}):
        out[code] = {
            "description": _DESCRIPTIONS[code],
            "content": {"application/json": {"model": ErrorResponse}},
        }
    return out


def _checked(value: Any) -> Any:
    """A domain result, handed to the response validation middleware, which checks it against the
    route's return model (and serialises it) before it leaves: domain dicts need no second model."""
    return value


_user_ids: TypeAdapter[str] = TypeAdapter(UserId)


def _user_id(raw: str) -> str:
    """A user id from the path: API Gateway hands ``rawPath`` over still percent-encoded."""
    try:
        return _user_ids.validate_python(unquote(raw))
    except PydanticValidationError:
        raise ValidationError("path.user_id: not a valid user id", field="path.user_id") from None


def _rt() -> Runtime:
    rt: Runtime = app.context["rt"]
    return rt


def _me() -> str:
    identity: tokens.Identity = app.context["identity"]
    return identity.user_id


def _publish(committed: events.Committed) -> None:
    """Publish after the commit. The mutation stands whatever happens here, so a failure is logged,
    never answered: peers notice the missing seq and ``sync`` replays it from the activity log."""
    rt = _rt()
    try:
        events.publish(rt, committed, rt.gateway_for(None))
    except Exception:  # noqa: BLE001 - the commit stands; the failure is logged, not answered
        logger.exception("publish after commit failed")


def _settle(change: workspaces.Change) -> None:
    rt = _rt()
    try:
        workspaces.settle(rt, rt.gateway_for(None), change)
    except Exception:  # noqa: BLE001 - the commit stands; the failure is logged, not answered
        logger.exception("settling a membership change failed")


WorkspaceId = Annotated[UUID, Path(description="workspace id")]
TaskId = Annotated[UUID, Path(description="task id")]
MemberId = Annotated[str, Path(min_length=1, max_length=400, description="user id (URL-encoded)")]
Cursor = Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page")]
NotificationCursor = Annotated[UUID | None, Query(description="next_cursor of the previous page")]
Limit = Annotated[int, Query(ge=1, le=200)]


# -- tickets -----------------------------------------------------------------------------------
@app.post(
    "/ws-tickets",
    operation_id="create_ticket",
    summary="A single-use WebSocket ticket for a workspace",
    tags=["realtime"],
    responses=_responses(200, "The ticket and the URL to open", _WRITE, 403, 404),
)
def create_ticket(body: Annotated[TicketRequest, Body()]) -> TicketOut:
    rt = _rt()
    return _checked(workspaces.issue_ticket(rt.db, rt.settings, _me(), str(body.workspace_id)))


# -- workspaces --------------------------------------------------------------------------------
@app.get(
    "/workspaces",
    operation_id="list_workspaces",
    summary="My workspaces",
    tags=["workspaces"],
    responses=_responses(200, "A page of workspaces", _READ),
)
def list_workspaces(cursor: Cursor = None, limit: Limit = 100) -> WorkspacePage:
    return _checked(workspaces.list_for(_rt().db, _me(), cursor=cursor, limit=limit))


@app.post(
    "/workspaces",
    status_code=201,
    operation_id="create_workspace",
    summary="Create a workspace (the caller becomes its owner)",
    tags=["workspaces"],
    responses=_responses(201, "The new workspace", _WRITE),
)
def create_workspace(body: Annotated[WorkspaceIn, Body()]) -> Workspace:
    return _checked(workspaces.create(_rt().db, _me(), body.name))


@app.get(
    "/workspaces/<workspace_id>",
    operation_id="get_workspace",
    summary="A workspace (members)",
    tags=["workspaces"],
    responses=_responses(200, "The workspace", _READ, 403, 404),
)
def get_workspace(workspace_id: WorkspaceId) -> Workspace:
    return _checked(workspaces.get(_rt().db, _me(), str(workspace_id)))


@app.patch(
    "/workspaces/<workspace_id>",
    operation_id="update_workspace",
    summary="Rename a workspace (admin+)",
    tags=["workspaces"],
    responses=_responses(200, "The workspace", _WRITE, 403, 404),
)
def update_workspace(workspace_id: WorkspaceId, body: Annotated[WorkspaceIn, Body()]) -> Workspace:
    return _checked(workspaces.rename(_rt().db, _me(), str(workspace_id), body.name))


@app.delete(
    "/workspaces/<workspace_id>",
    operation_id="delete_workspace",
    summary="Delete a workspace and everything in it (owner); its connections are closed",
    tags=["workspaces"],
    responses=_responses(204, "Deleted", _READ, 403, 404),
)
def delete_workspace(workspace_id: WorkspaceId):  # no return annotation: a 204 has no body model
    _settle(workspaces.delete(_rt().db, _me(), str(workspace_id)))
    return Response(204)


# -- members -----------------------------------------------------------------------------------
@app.get(
    "/workspaces/<workspace_id>/members",
    operation_id="list_members",
    summary="The members of a workspace (members)",
    tags=["members"],
    responses=_responses(200, "Every member (at most 50: one page)", _READ, 403, 404),
)
def list_members(workspace_id: WorkspaceId) -> MemberPage:
    return _checked(workspaces.list_members(_rt().db, _me(), str(workspace_id)))


@app.post(
    "/workspaces/<workspace_id>/members",
    status_code=201,
    operation_id="add_member",
    summary="Add a user who has signed in before, by id or email (admin+)",
    tags=["members"],
    responses=_responses(201, "The new member", _WRITE, 403, 404, 409),
)
def add_member(workspace_id: WorkspaceId, body: Annotated[MemberIn, Body()]) -> Member:
    change = workspaces.add_member(
        _rt().db, _me(), str(workspace_id), user_id=body.user_id, email=body.email, role=body.role
    )
    _settle(change)
    return _checked(change.result)


@app.patch(
    "/workspaces/<workspace_id>/members/<user_id>",
    operation_id="update_member",
    summary="Change a member's role (admin+; only an owner touches admins and owners)",
    tags=["members"],
    responses=_responses(200, "The member", _WRITE, 403, 404, 409),
)
def update_member(workspace_id: WorkspaceId, user_id: MemberId, body: Annotated[RoleIn, Body()]) -> Member:
    change = workspaces.change_role(_rt().db, _me(), str(workspace_id), _user_id(user_id), body.role)
    _settle(change)
    return _checked(change.result)


@app.delete(
    "/workspaces/<workspace_id>/members/<user_id>",
    operation_id="remove_member",
    summary="Remove a member (admin+), or leave (yourself); their connections are closed",
    tags=["members"],
    responses=_responses(204, "Removed", _READ, 403, 404, 409),
)
def remove_member(workspace_id: WorkspaceId, user_id: MemberId):  # a 204: no return model
    _settle(workspaces.remove_member(_rt().db, _me(), str(workspace_id), _user_id(user_id)))
    return Response(204)


# -- tasks -------------------------------------------------------------------------------------
@app.get(
    "/workspaces/<workspace_id>/tasks",
    operation_id="list_workspace_tasks",
    summary="A workspace's tasks, in creation order (members)",
    tags=["tasks"],
    responses=_responses(200, "A page of tasks", _READ, 403, 404),
)
def list_workspace_tasks(workspace_id: WorkspaceId, cursor: Cursor = None, limit: Limit = 100) -> TaskPage:
    return _checked(tasks.list_workspace(_rt().db, _me(), str(workspace_id), cursor=cursor, limit=limit))


@app.post(
    "/workspaces/<workspace_id>/tasks",
    status_code=201,
    operation_id="create_workspace_task",
    summary="Create a task in a workspace (members)",
    tags=["tasks"],
    responses=_responses(201, "The new task", _WRITE, 403, 404, 409),
)
def create_workspace_task(workspace_id: WorkspaceId, body: Annotated[TaskDraft, Body()]) -> Task:
    m = tasks.create(_rt().db, _me(), body, workspace_id=str(workspace_id))
    _publish(m.committed)
    return _checked(m.task)


@app.get(
    "/tasks",
    operation_id="list_personal_tasks",
    summary="My personal tasks, in creation order",
    tags=["tasks"],
    responses=_responses(200, "A page of tasks", _READ),
)
def list_personal_tasks(cursor: Cursor = None, limit: Limit = 100) -> TaskPage:
    return _checked(tasks.list_personal(_rt().db, _me(), cursor=cursor, limit=limit))


@app.post(
    "/tasks",
    status_code=201,
    operation_id="create_personal_task",
    summary="Create a personal task (seen and changed by its owner only)",
    tags=["tasks"],
    responses=_responses(201, "The new task", _WRITE, 409),
)
def create_personal_task(body: Annotated[TaskDraft, Body()]) -> Task:
    m = tasks.create(_rt().db, _me(), body, workspace_id=None)
    return _checked(m.task)


@app.get(
    "/tasks/<task_id>",
    operation_id="get_task",
    summary="A task (members of its workspace; a personal task: its owner)",
    tags=["tasks"],
    responses=_responses(200, "The task", _READ, 403, 404),
)
def get_task(task_id: TaskId) -> Task:
    return _checked(tasks.get(_rt().db, _me(), str(task_id)))


@app.patch(
    "/tasks/<task_id>",
    operation_id="update_task",
    summary="Change some fields of a task; last write wins per field",
    description="With `base_version`, the change is refused (409, with the current task) when the "
    "task has moved on since that version.",
    tags=["tasks"],
    responses=_responses(200, "The committed task", _WRITE, 403, 404, 409),
)
def update_task(
    task_id: TaskId,
    body: Annotated[TaskChanges, Body()],
    base_version: Annotated[int | None, Query(ge=1)] = None,
) -> Task:
    m = tasks.update(_rt().db, _me(), str(task_id), body.patch(), base_version=base_version)
    _publish(m.committed)
    return _checked(m.task)


@app.delete(
    "/tasks/<task_id>",
    operation_id="delete_task",
    summary="Delete a task; answers its tombstone (deleted, final version)",
    tags=["tasks"],
    responses=_responses(200, "The tombstone", _READ, 403, 404),
)
def delete_task(task_id: TaskId) -> Task:
    m = tasks.delete(_rt().db, _me(), str(task_id))
    _publish(m.committed)
    return _checked(m.task)


# -- activity and presence ---------------------------------------------------------------------
@app.get(
    "/workspaces/<workspace_id>/activity",
    operation_id="list_activity",
    summary="The workspace's events, newest first (members)",
    tags=["workspaces"],
    responses=_responses(200, "A page of events", _READ, 403, 404),
)
def list_activity(
    workspace_id: WorkspaceId,
    before: Annotated[int | None, Query(ge=1, description="only events with a smaller seq")] = None,
    limit: Limit = 50,
) -> ActivityPage:
    return _checked(workspaces.activity(_rt().db, _me(), str(workspace_id), before=before, limit=limit))


@app.get(
    "/workspaces/<workspace_id>/presence",
    operation_id="get_presence",
    summary="Who is online in the workspace (members)",
    tags=["realtime"],
    responses=_responses(200, "One entry per online user", _READ, 403, 404),
)
def get_presence(workspace_id: WorkspaceId) -> PresencePage:
    return _checked(workspaces.presence_of(_rt(), _me(), str(workspace_id)))


# -- notifications -----------------------------------------------------------------------------
@app.get(
    "/notifications",
    operation_id="list_notifications",
    summary="My notifications, newest first",
    tags=["notifications"],
    responses=_responses(200, "A page of notifications", _READ),
)
def list_notifications(
    unread: bool = False, cursor: NotificationCursor = None, limit: Limit = 50
) -> NotificationPage:
    page = notifications.list_for(
        _rt().db, _me(), unread_only=unread, cursor=str(cursor) if cursor else None, limit=limit
    )
    return _checked(page)


@app.post(
    "/notifications/read",
    operation_id="read_notifications",
    summary="Mark some of my notifications read",
    tags=["notifications"],
    responses=_responses(200, "The ids now read", _WRITE),
)
def read_notifications(body: Annotated[ReadIn, Body()]) -> ReadOut:
    read = notifications.mark_read(_rt().db, _me(), [str(i) for i in body.ids])
    return _checked({"read": read})


# -- the entry point -------------------------------------------------------------------------------
_resolving = threading.Lock()
_seen: weakref.WeakKeyDictionary[Runtime, dict[tokens.Identity, None]] = weakref.WeakKeyDictionary()


def _see(rt: Runtime, identity: tokens.Identity) -> None:
    """Create or refresh the caller's user row, once per container per distinct identity."""
    seen = _seen.setdefault(rt, {})
    if identity in seen:
        return
    workspaces.upsert_user(rt.db, identity)
    if len(seen) >= SEEN_USERS_MAX:
        seen.clear()
    seen[identity] = None


def _header(event: dict[str, Any], name: str) -> str | None:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name:
            return str(value)
    return None


def _bearer(event: dict[str, Any]) -> str | None:
    value = _header(event, "authorization")
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    return token.strip()


def _readable(event: dict[str, Any]) -> dict[str, Any]:
    """The event with its body checked (size, encoding, media type) and decoded to text."""
    body = event.get("body")
    if body is None or body == "":
        return event
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(str(body), validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("the body is not valid base64") from None
    else:
        raw = str(body).encode("utf-8", "surrogatepass")
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body is larger than {MAX_BODY_BYTES} bytes")
    media = (_header(event, "content-type") or "").split(";")[0].strip().lower()
    if media and media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the body is not UTF-8") from None
    return {**event, "body": text, "isBase64Encoded": False}


def _respond(event: dict[str, Any], response: Response) -> dict[str, Any]:
    builder: ResponseBuilder[Any] = ResponseBuilder(response, serializer=app._serializer)
    return builder.build(APIGatewayProxyEventV2(event))


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Answer one API Gateway HTTP API (payload 2.0) event."""
    try:
        event = _readable(event)
        rt = runtime()
        identity = tokens.verify_access_token(_bearer(event), rt.settings)
        _see(rt, identity)
    except Exception as exc:  # noqa: BLE001 - every failure is answered through error_response
        result = _respond(event, error_response(exc))
    else:
        # The resolver keeps the request in shared state (its context, the current event). Lambda
        # runs one invocation per container at a time; the local gateway runs handlers in threads,
        # so requests take turns here rather than read each other's identity.
        with _resolving:
            app.append_context(rt=rt, identity=identity)
            result = app.resolve(event, context)
    http = (event.get("requestContext") or {}).get("http") or {}
    logger.info(
        "request",
        extra={"method": http.get("method"), "path": http.get("path"), "status": result.get("statusCode")},
    )
    return result


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of every route, generated from the code (committed as docs/openapi.json).

    Powertools documents its own validation-error shapes; every error here is ``ErrorResponse``, so
    those references are rewritten and the unused schemas dropped. A 204 has no content.
    """
    raw = app.get_openapi_json_schema(
        title="Collab HTTP API",
        version=API_VERSION,
        description="Request/response side of Collab (contract section 4). Every route takes a bearer "
        'access token; errors are `{"error": {"code", "message"}}`; lists are '
        '`{"items": [...], "next_cursor": ...}`.',
        security_schemes={"bearerAuth": HTTPBearer(bearerFormat="JWT")},
        security=[{"bearerAuth": []}],
    )
    doc: dict[str, Any] = json.loads(raw)
    ours = "#/components/schemas/ErrorResponse"
    theirs = {"#/components/schemas/HTTPValidationError", "#/components/schemas/ResponseValidationError"}

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            if node.get("$ref") in theirs:
                return {"$ref": ours}
            return {k: rewrite(v) for k, v in node.items()}
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    doc = rewrite(doc)
    schemas = doc.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ResponseValidationError", "ValidationError"):
        schemas.pop(name, None)
    for ops in doc.get("paths", {}).values():
        for op in ops.values():
            op["responses"] = dict(sorted(op.get("responses", {}).items()))
            for status, resp in op["responses"].items():
                if status == "204":
                    resp.pop("content", None)
                elif status == "500":
                    resp["description"] = _DESCRIPTIONS[500]
    return doc


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["--openapi"]:
        print("usage: python -m collab.http.app --openapi > docs/openapi.json", file=sys.stderr)
        return 2
    sys.stdout.write(json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
