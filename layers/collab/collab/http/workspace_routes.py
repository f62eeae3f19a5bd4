"""Workspaces: list, create, read, rename, delete; their activity log and who is online."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from collab.domain import workspaces
from collab.http.routing import IdempotencyKey, TaggedRouter, checked, db, follow, me, route, rt, settle
from collab.http.schemas import (
    ActivityPage,
    Cursor,
    Limit,
    PresencePage,
    WorkspaceId,
    WorkspaceIn,
    WorkspacePage,
)
from collab.models import Workspace

router = TaggedRouter("workspaces")
WS = "/workspaces/<workspace_id>"


@route(router, "GET", "/workspaces", "list_workspaces", "My workspaces", ok="A page of workspaces")
def list_workspaces(cursor: Cursor = None, limit: Limit = 100) -> WorkspacePage:
    return checked(workspaces.list_for(rt().db, me(), cursor=cursor, limit=limit))


@route(router, "POST", "/workspaces", "create_workspace", "Create a workspace (the caller becomes its owner)",
       ok="The new workspace", status=201, errors=(409,), links=follow("workspace_id", (
           "get_workspace", "update_workspace", "delete_workspace", "list_activity", "get_presence",
           "list_members", "list_workspace_tasks", "create_workspace_task")))  # fmt: skip
def create_workspace(
    body: Annotated[WorkspaceIn, Body()], idempotency_key: IdempotencyKey = None
) -> Workspace:
    return checked(
        workspaces.create(
            db(201, idempotency_key), me(), body.name, limit=rt().settings.limits.workspaces_per_user
        )
    )


@route(router, "GET", WS, "get_workspace", "A workspace (members)", ok="The workspace", errors=(403, 404))
def get_workspace(workspace_id: WorkspaceId) -> Workspace:
    return checked(workspaces.get(rt().db, me(), str(workspace_id)))


@route(router, "PATCH", WS, "update_workspace", "Rename a workspace (admin+)", ok="The workspace",
       errors=(403, 404))  # fmt: skip
def update_workspace(workspace_id: WorkspaceId, body: Annotated[WorkspaceIn, Body()]) -> Workspace:
    return checked(workspaces.rename(rt().db, me(), str(workspace_id), body.name))


@route(router, "DELETE", WS, "delete_workspace",
       "Delete a workspace and everything in it (owner); its connections are closed",
       ok="Deleted", status=204, errors=(403, 404))  # fmt: skip
def delete_workspace(workspace_id: WorkspaceId):  # no return annotation: a 204 has no body model
    settle(workspaces.delete(rt().db, me(), str(workspace_id)))
    return Response(204)


@route(router, "GET", f"{WS}/activity", "list_activity", "The workspace's events, newest first (members)",
       ok="A page of events", errors=(403, 404))  # fmt: skip
def list_activity(
    workspace_id: WorkspaceId,
    before: Annotated[int | None, Query(ge=1, description="only events with a smaller seq")] = None,
    limit: Limit = 50,
) -> ActivityPage:
    return checked(workspaces.activity(rt().db, me(), str(workspace_id), before=before, limit=limit))


presence_router = TaggedRouter("realtime")


@route(presence_router, "GET", f"{WS}/presence", "get_presence", "Who is online in the workspace (members)",
       ok="One entry per online user", errors=(403, 404))  # fmt: skip
def get_presence(workspace_id: WorkspaceId) -> PresencePage:
    return checked(workspaces.presence_of(rt(), me(), str(workspace_id)))
